"""``exemplars.html``: what the most selective units answer to, as one self-contained page.

For each measure, the live units that score highest on it (over all layers): the top-k images
that drive the unit (PNG thumbnails embedded as base64 ``data:`` URIs) and a small inline
SVG of its mean activation per class (the preferred class in red). Dead units (no response
above 0 on the images) are never ranked: they are counted and listed apart. No external
file, font or script: the page opens offline and can be mailed.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import torch
from PIL import Image

__all__ = ["TopK", "png_data_uri", "class_histogram_svg", "exemplar_page"]


class TopK:
    """Streaming top-k activations of every unit of one layer: values and global sample indices (k, U)."""

    def __init__(self, k: int):
        self.k = k
        self.values: torch.Tensor | None = None
        self.indices: torch.Tensor | None = None

    def update(self, acts: torch.Tensor, offset: int) -> None:
        index = torch.arange(offset, offset + acts.shape[0], device=acts.device).unsqueeze(1).expand_as(acts)
        values = acts if self.values is None else torch.cat([self.values, acts])
        indices = index if self.indices is None else torch.cat([self.indices, index])
        top = values.topk(min(self.k, values.shape[0]), dim=0)
        self.values, self.indices = top.values, indices.gather(0, top.indices)


def png_data_uri(image: torch.Tensor) -> str:
    """uint8 (3, H, W) -> ``data:image/png;base64,...``."""
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def class_histogram_svg(means: np.ndarray, classes: list[str], preferred: int, width: int = 240,
                        height: int = 60) -> str:
    """Inline SVG bar chart of a unit's mean activation per class (NaN: absent class, no bar)."""
    values = np.nan_to_num(np.asarray(means, dtype=float), nan=0.0)
    top = max(float(values.max()), 1e-12)
    bar = width / max(1, len(values))
    bars = []
    for c, v in enumerate(values):
        h = max(0.0, v) / top * (height - 2)
        color = "#c0392b" if c == preferred else "#7f8c8d"
        label = html.escape(f"{classes[c]}: {v:.4g}")
        bars.append(f'<rect x="{c * bar:.2f}" y="{height - h:.2f}" width="{max(bar - 0.5, 0.5):.2f}" '
                    f'height="{h:.2f}" fill="{color}"><title>{label}</title></rect>')
    return (f'<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="mean activation per class">'
            + "".join(bars) + "</svg>")


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h2 { border-bottom: 1px solid #ccc; margin-top: 1.5em; }
.unit { display: flex; align-items: center; gap: 1em; margin: 0.6em 0; }
.meta { width: 15em; font-size: 0.85em; }
.thumbs img { width: 64px; height: 64px; image-rendering: pixelated; margin-right: 3px; border: 1px solid #ddd; }
.hist { background: #fafafa; border: 1px solid #eee; }
"""


def exemplar_page(title: str, sections: list[dict], dead: dict[str, list[int]] | None = None,
                  total_units: int | None = None) -> str:
    """The page. ``sections``: ``{"measure", "units": [{"layer", "unit", "values": {measure: v},
    "preferred": name, "images": [(data_uri, class name, activation)], "svg": svg}]}``;
    ``dead``: layer -> indices of its dead units (listed apart, never in a section), out of ``total_units``."""
    dead = {layer: units for layer, units in (dead or {}).items() if units}
    count = sum(len(units) for units in dead.values())
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<p>For each measure, the live units that score highest on it; for each unit, the images that drive "
             "it most (activation in the tooltip) and its mean activation per class (preferred class in red).</p>"]
    if count:
        of = f" of {total_units}" if total_units else ""
        parts.append(f"<p id='dead-count'>{count}{of} units are dead (no response above 0 on these images): they "
                     "have no preferred class and are ranked by no measure; <a href='#dead'>listed below</a>.</p>")
    for section in sections:
        parts.append(f"<h2 id='{html.escape(section['measure'])}'>{html.escape(section['measure'])}</h2>")
        for unit in section["units"]:
            values = ", ".join(f"{k} {v:.3g}" for k, v in unit["values"].items())
            thumbs = "".join(
                f"<img src='{uri}' alt='{html.escape(name)}' title='{html.escape(name)}: {act:.4g}'>"
                for uri, name, act in unit["images"])
            parts.append(
                f"<div class='unit'><div class='meta'><b>{html.escape(unit['layer'])} #{unit['unit']}</b><br>"
                f"prefers {html.escape(unit['preferred'])}<br><small>{html.escape(values)}</small></div>"
                f"<div class='thumbs'>{thumbs}</div>{unit['svg']}</div>")
    if count:
        parts.append(f"<h2 id='dead'>Dead units ({count})</h2><ul class='dead'>")
        for layer, units in dead.items():
            listed = ", ".join(f"#{u}" for u in units)
            parts.append(f"<li>{html.escape(layer)} ({len(units)}): {listed}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
