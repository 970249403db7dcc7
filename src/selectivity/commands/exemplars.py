"""``exemplars.html``: what the most selective units answer to, as one self-contained page.

For each measure (what it says of a unit, in one sentence), the units that score most selective
on it over all layers, each measure ranked its own way
(:func:`~selectivity.analysis.measures.most_selective`): the images that drive the unit most
(PNG thumbnails embedded as base64 ``data:`` URIs; only images it responds to, above 0) and an
inline SVG of its mean response per class, with class names and a scale, so that a printed page
reads. Only units active (response above 0) on at least ``min_active`` images are ranked: a unit
that fires on a handful of images of one class scores SI ~1 from a few responses. The others are
listed apart, and dead units (no response above 0 at all) too. No external file, font or script:
the page opens offline and can be mailed.
"""

from __future__ import annotations

import base64
import html
import io
import math

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


#: Classes up to this many get their names under their bars; more get a caption instead.
NAMED_BARS = 20
_FONT = 9  # px, the chart's text
_CHAR = 0.56 * _FONT  # the width of a character of sans-serif text, about
_LABEL_CHARS = 14  # longer class names are cut (the bar's tooltip has the whole name)


def _ticks(lo: float, hi: float) -> list[float]:
    """Round tick values (1, 2 or 5 x 10^k apart, 2 to 4 of them) within [lo, hi], 0 included."""
    raw = (hi - lo) / 3
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _short(name: str) -> str:
    return name if len(name) <= _LABEL_CHARS else name[: _LABEL_CHARS - 1] + "\u2026"


def class_histogram_svg(means: np.ndarray, classes: list[str], preferred: int) -> str:
    """Inline SVG bar chart of a unit's mean response per class (NaN: absent class, no bar).

    A y axis with round values, a line at 0, the preferred class in red; each class's name under
    its bar when there are at most :data:`NAMED_BARS` classes, else a caption naming the
    preferred class (every bar's tooltip names its class and value).
    """
    values = np.asarray(means, dtype=float)
    finite = values[np.isfinite(values)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = max(0.0, float(finite.max())) if finite.size else 0.0
    if hi - lo <= 0:
        hi = 1.0  # every class mean 0: an axis from 0 to 1
    ticks = _ticks(lo, hi)
    named = len(values) <= NAMED_BARS
    slot = 16.0 if named else max(1.5, 320.0 / len(values))
    plot_w, plot_h = max(120.0, slot * len(values)), 70.0
    tick_text = max(len(f"{t:.3g}") for t in ticks) * _CHAR
    longest = max((len(_short(c)) for c in classes), default=0) * _CHAR
    # names hang from the bars' feet at -60 degrees: down by sin 60, left by cos 60 of their length
    left = max(14 + tick_text + 6, 0.5 * len(_short(classes[0])) * _CHAR - slot / 2 + 4 if named else 0)
    top, bottom = 6.0, (10 + 0.87 * longest if named else 18.0)
    width, height = left + plot_w + 6, top + plot_h + bottom

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    parts = []
    for t in ticks:  # gridlines and values
        parts.append(f'<line x1="{left - 3:.1f}" y1="{y(t):.1f}" x2="{left + plot_w:.1f}" y2="{y(t):.1f}" '
                     f'stroke="{"#888" if t == 0 else "#e3e3e3"}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 5:.1f}" y="{y(t) + 3:.1f}" text-anchor="end">{t:.3g}</text>')
    parts.append(f'<line x1="{left:.1f}" y1="{top:.1f}" x2="{left:.1f}" y2="{top + plot_h:.1f}" stroke="#888"/>')
    parts.append(f'<text transform="translate(9 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
                 "mean response</text>")
    for c, v in enumerate(values):
        x = left + c * slot
        name = classes[c] if c < len(classes) else str(c)
        color = "#c0392b" if c == preferred else "#7f8c8d"
        if math.isfinite(v):
            y0, y1 = sorted((y(0.0), y(v)))
            label = html.escape(f"{name}: {v:.4g}")
            parts.append(f'<rect x="{x + 0.15 * slot:.2f}" y="{y0:.2f}" width="{max(0.7 * slot, 0.5):.2f}" '
                         f'height="{max(y1 - y0, 0.0):.2f}" fill="{color}"><title>{label}</title></rect>')
        if named:
            cx, foot = x + slot / 2, top + plot_h + 6
            weight = ' font-weight="bold" fill="#c0392b"' if c == preferred else ""
            parts.append(f'<text transform="translate({cx + 3:.1f} {foot:.1f}) rotate(-60)" text-anchor="end"'
                         f'{weight}><title>{html.escape(name)}</title>{html.escape(_short(name))}</text>')
    if not named:
        pref = classes[preferred] if 0 <= preferred < len(classes) else "?"
        parts.append(f'<text x="{left:.1f}" y="{top + plot_h + 13:.1f}">{len(values)} classes in the data\'s '
                     f'order; red: {html.escape(pref)}</text>')
    return (f'<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="sans-serif" font-size="{_FONT}" fill="#333" '
            f'role="img" aria-label="mean response per class">' + "".join(parts) + "</svg>")


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 80em; }
h2 { border-bottom: 1px solid #ccc; margin-top: 1.5em; }
p.about { margin: 0.3em 0 0.8em; color: #444; }
.unit { display: flex; align-items: center; gap: 1em; margin: 0.6em 0; flex-wrap: wrap; break-inside: avoid; }
.meta { width: 15em; font-size: 0.85em; }
.thumbs { white-space: nowrap; }
.thumbs img { width: 64px; height: 64px; image-rendering: pixelated; margin-right: 3px; border: 1px solid #ddd; }
.few { color: #a04000; }
.hist { background: #fafafa; border: 1px solid #eee; }
ul.apart li { margin: 0.3em 0; }
"""


def _units_list(units: dict[str, list], label) -> list[str]:
    return [f"<li>{html.escape(layer)} ({len(items)}): {', '.join(label(u) for u in items)}</li>"
            for layer, items in units.items()]


def exemplar_page(title: str, sections: list[dict], dead: dict[str, list[int]] | None = None,
                  total_units: int | None = None, rare: dict[str, list[tuple[int, int]]] | None = None,
                  min_active: int | None = None, source: str | None = None, slots: int | None = None) -> str:
    """The page.

    Args:
        title: names the model, its weights, the data and the number of images.
        sections: ``{"measure", "description", "units": [{"layer", "unit", "values": {measure: v},
            "preferred": name, "active": images it responds to, "images": [(data_uri, class name,
            activation)], "svg": svg}]}``, units most selective first.
        dead: layer -> indices of its dead units (listed apart, never in a section), out of ``total_units``.
        rare: layer -> [(unit, images it responds to)] of the live units active on fewer than
            ``min_active`` images (listed apart, never in a section).
        source: one line on what was measured (model, weights path, data, layers).
        slots: exemplars per unit; a unit active on fewer images shows fewer, and says so.
    """
    dead = {layer: units for layer, units in (dead or {}).items() if units}
    rare = {layer: units for layer, units in (rare or {}).items() if units}
    n_dead, n_rare = sum(len(u) for u in dead.values()), sum(len(u) for u in rare.values())
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if source:
        parts.append(f"<p class='source'>{html.escape(source)}</p>")
    parts.append("<p>For each measure, the units that score most selective on it (over all layers); for each unit, "
                 "the images that drive it most (its response in the tooltip) and its mean response per class "
                 "(preferred class in red).</p>")
    if min_active is not None:
        were = "unit is" if n_rare == 1 else "units are"
        apart = (f" {n_rare} live {were} active on fewer, <a href='#rare'>listed apart</a>: from a few "
                 "responses any measure can call a unit perfectly selective." if n_rare else "")
        parts.append(f"<p id='min-active'>Ranked: units active (response above 0) on at least {min_active} images "
                     f"(<code>--min-active</code>).{apart}</p>")
    if n_dead:
        of = f" of {total_units}" if total_units else ""
        parts.append(f"<p id='dead-count'>{n_dead}{of} units are dead (no response above 0 on these images): they "
                     "have no preferred class and are ranked by no measure; <a href='#dead'>listed below</a>.</p>")
    for section in sections:
        measure = html.escape(section["measure"])
        parts.append(f"<h2 id='{measure}'>{measure}</h2>")
        if section.get("description"):
            parts.append(f"<p class='about'>{html.escape(section['description'])}</p>")
        if not section["units"]:
            parts.append("<p>No ranked unit has a value of this measure.</p>")
        for unit in section["units"]:
            values = ", ".join(f"{k} {v:.3g}" for k, v in unit["values"].items())
            thumbs = "".join(
                f"<img src='{uri}' alt='{html.escape(name)}' title='{html.escape(name)}: {act:.4g}'>"
                for uri, name, act in unit["images"])
            shown, count = len(unit["images"]), ""
            if unit.get("active") is not None:
                count = f"<br>active on {unit['active']} images"
            if slots is not None and shown < slots:  # never an image it does not respond to in a slot
                count = f"<br><span class='few'>active on {unit.get('active', shown)} images only: {shown} of " \
                        f"{slots} exemplars</span>"
            parts.append(
                f"<div class='unit'><div class='meta'><b>{html.escape(unit['layer'])} #{unit['unit']}</b><br>"
                f"prefers {html.escape(unit['preferred'])}{count}<br><small>{html.escape(values)}</small>"
                f"</div><div class='thumbs'>{thumbs}</div>{unit['svg']}</div>")
    if n_rare:
        parts.append(f"<h2 id='rare'>Rarely active units ({n_rare}): active on fewer than {min_active} images</h2>"
                     "<p>Unit (the number of images it responds to).</p><ul class='apart rare'>")
        parts += _units_list(rare, lambda u: f"#{u[0]} ({u[1]})")
        parts.append("</ul>")
    if n_dead:
        parts.append(f"<h2 id='dead'>Dead units ({n_dead})</h2><ul class='apart dead'>")
        parts += _units_list(dead, lambda u: f"#{u}")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
