"""``exemplars.html`` for text: the texts that drive each of the most selective units, tokens marked.

For each measure, the live units that score highest on it (over all layers), as on the image
page (:mod:`.exemplars`, whose class histogram this page shares): for each unit, its top texts,
each with its class and the unit's value, and every token shaded by that token's own response
(its positive part, or its raw value with ``--raw-tokens``), darkest for the strongest token the
unit shows; hovering a token gives its value. Special tokens ([CLS], [SEP], <s>) are shown as
small tags. All text is HTML-escaped. Dead units are counted and listed apart, never ranked.
"""

from __future__ import annotations

import html

from .exemplars import class_histogram_svg

__all__ = ["class_histogram_svg", "marked_text", "text_exemplar_page"]

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h2 { border-bottom: 1px solid #ccc; margin-top: 1.5em; }
.unit { display: flex; align-items: flex-start; gap: 1em; margin: 0.8em 0; border-bottom: 1px dotted #ddd; }
.meta { width: 15em; flex: none; font-size: 0.85em; overflow-wrap: anywhere; }
.texts { flex: 1; font-size: 0.9em; }
.texts p { margin: 0.15em 0 0.5em 0; line-height: 1.6; }
.texts .label { color: #555; font-size: 0.8em; margin-right: 0.5em; }
.tok { border-radius: 2px; }
.special { font-size: 0.7em; color: #777; border: 1px solid #ccc; border-radius: 3px; padding: 0 2px; }
.hist { background: #fafafa; border: 1px solid #eee; flex: none; }
"""


def marked_text(text: str, spans: list[tuple[int, int]], values: list[float], top: float,
                special: list[str | None] | None = None) -> str:
    """``text`` as HTML with each token's characters ``spans[i]`` shaded by ``values[i] / top``.

    A token with ``special[i]`` set (a [CLS] with no characters of its own) is shown as a small tag.
    Characters between tokens (spaces) are kept as they are; everything is escaped.
    """
    special = special or [None] * len(spans)
    top = top if top > 0 else 1.0
    parts, at = [], 0
    for (start, end), value, tag in zip(spans, values, special):
        strength = max(0.0, min(1.0, value / top))
        shade = f"background: rgba(192, 57, 43, {0.85 * strength:.3f})"
        if tag is not None:
            parts.append(f"<span class='special' style='{shade}' title='{html.escape(tag)}: {value:.4g}'>"
                         f"{html.escape(tag)}</span>")
            continue
        if start < at:  # a token that shares characters with the previous one (byte pieces)
            start = at
        parts.append(html.escape(text[at:start]))
        piece = text[start:end]
        parts.append(f"<span class='tok' style='{shade}' title='{html.escape(piece)}: {value:.4g}'>"
                     f"{html.escape(piece)}</span>")
        at = max(at, end)
    parts.append(html.escape(text[at:]))
    return "".join(parts)


def text_exemplar_page(title: str, sections: list[dict], dead: dict[str, list[int]] | None = None,
                       total_units: int | None = None, rule: str = "") -> str:
    """The page. ``sections``: ``{"measure", "units": [{"layer", "unit", "values": {measure: v},
    "preferred": name, "texts": [(html of marked_text, class name, value)], "svg": svg}]}``;
    ``dead``: layer -> its dead units (listed apart), out of ``total_units``; ``rule``: how a text's
    value is made from its tokens, said once at the top."""
    dead = {layer: units for layer, units in (dead or {}).items() if units}
    count = sum(len(units) for units in dead.values())
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<p>For each measure, the live units that score highest on it; for each unit, the texts that drive it "
             "most (class and the unit's value first), each token shaded by its own response to the unit (hover "
             "for the value), and the unit's mean value per class (preferred class in red).</p>"]
    if rule:
        parts.append(f"<p><small>{html.escape(rule)}</small></p>")
    if count:
        of = f" of {total_units}" if total_units else ""
        parts.append(f"<p id='dead-count'>{count}{of} units are dead (no response above 0 on these texts): they "
                     "have no preferred class and are ranked by no measure; <a href='#dead'>listed below</a>.</p>")
    for section in sections:
        parts.append(f"<h2 id='{html.escape(section['measure'])}'>{html.escape(section['measure'])}</h2>")
        for unit in section["units"]:
            values = ", ".join(f"{k} {v:.3g}" for k, v in unit["values"].items())
            texts = "".join(f"<p><span class='label'>{html.escape(name)} · {value:.4g}</span>{marked}</p>"
                            for marked, name, value in unit["texts"])
            parts.append(
                f"<div class='unit'><div class='meta'><b>{html.escape(unit['layer'])} #{unit['unit']}</b><br>"
                f"prefers {html.escape(unit['preferred'])}<br><small>{html.escape(values)}</small></div>"
                f"<div class='texts'>{texts}</div>{unit['svg']}</div>")
    if count:
        parts.append(f"<h2 id='dead'>Dead units ({count})</h2><ul class='dead'>")
        for layer, units in dead.items():
            parts.append(f"<li>{html.escape(layer)} ({len(units)}): {', '.join(f'#{u}' for u in units)}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
