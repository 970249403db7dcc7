"""The report's confirmation: each claim's exploratory and confirmatory verdicts side by side, and the
plan of a confirmation sweep (see :mod:`selectivity.report.claims.confirm`)."""

from __future__ import annotations

import html
import math

from .claims.confirm import AFTER, NO_FINDING, Confirmation, ConfirmationPlan, replicated_share
from .claims.results import INCONCLUSIVE, NOT_TESTED, SUPPORTED

__all__ = ["confirmation_section", "plan_section"]


def _e(text) -> str:
    return html.escape(str(text))


def _badge(verdict: str) -> str:
    return f'<span class="badge {verdict.replace(" ", "-")}">{_e(verdict)}</span>'


def _replicated(c: Confirmation) -> str:
    if c.replicated is None:
        return f"<span class='sub'>{_e(c.status)}</span>"
    colour = "supported" if c.replicated else "refuted"
    return f'<span class="badge {colour}">{_e(c.status)}</span>'


def _seeds(comps) -> str:
    if not comps:
        return "—"
    groups = sorted({c.n_group for c in comps})
    return "/".join(map(str, groups)) + (" (2 seeds: 1 df)" if min(groups) == 2 else "")


def _verdict(cell, comp) -> str:
    """An alpha's own verdict (Holm-adjusted); inside a claim its cell supports as a whole, an alpha that
    does not pass Holm alone is shown as holding within it, as the claims table does."""
    if comp.verdict == INCONCLUSIVE and cell.verdict == SUPPORTED:
        return "<span class='sub'>holds within the supported claim</span>"
    return _badge(comp.verdict)


def _rows(c: Confirmation, fmt) -> str:
    """One row per comparison of the claim: exploratory and confirmatory numbers side by side."""
    explored = {(cell.label, comp.alpha): (cell, comp) for cell in c.exploratory.cells for comp in cell.comparisons}
    confirmed = {(cell.label, comp.alpha): (cell, comp) for cell in c.confirmatory.cells
                 for comp in cell.comparisons}
    out = []
    for key in dict.fromkeys([*explored, *confirmed]):
        a, b = explored.get(key), confirmed.get(key)
        label = (a or b)[1].label
        if a:
            cell, comp = a
            shown = _verdict(cell, comp) if not c.claim.after_exploration else "<span class='sub'>no test</span>"
            left = (f"<td class='num'>{fmt(c.claim, comp)}</td><td class='num'>{_p(comp.p_value)}</td>"
                    f"<td>{shown}</td>")
        else:
            left = "<td colspan='3' class='sub'>—</td>"
        if b:
            cell, comp = b
            right = (f"<td>{comp.n_group}</td><td class='num'>{fmt(c.claim, comp)}</td>"
                     f"<td class='num'>{_p(comp.p_value)}</td><td>{_verdict(cell, comp)}</td>")
        else:
            right = "<td colspan='4' class='sub'>not re-tested (not part of the finding)</td>"
        out.append(f"<tr class='comparison'><td class='indent2'>{_e(label)}</td>{left}{right}<td></td></tr>")
    return "".join(out)


def _p(p: float) -> str:
    if math.isnan(p):
        return "—"
    return "&lt; 0.001" if p < 0.001 else f"{p:.3f}"


def confirmation_section(confirmations: list[Confirmation], exploratory: str, confirmatory: str, fmt) -> str:
    """The claims table of a confirmation: per claim, what the exploratory seeds found, the confirmatory
    seeds' one-sided test of that finding, and whether it replicated. ``fmt(claim, comparison)`` writes an
    estimate with its interval as the claims table does."""
    done, findings = replicated_share(confirmations)
    rows = []
    untested = [c for c in confirmations if c.exploratory.verdict == NOT_TESTED and c.confirmatory.verdict == NOT_TESTED]
    for c in confirmations:
        if c in untested:
            continue
        note = {AFTER: "written after the exploratory results were seen: decided by the confirmation alone",
                NO_FINDING: "no exploratory finding: the confirmatory verdict is exploratory in its turn"}.get(
            c.finding, f"exploratory finding: {c.finding}; the confirmatory seeds test it one-sided")
        rows.append(
            "<tr class='claim'>"
            f"<td colspan='8'><div class='statement'>{_e(c.claim.statement)}</div>"
            f"<div class='sub'><span class='cid'>{_e(c.claim.id)}</span> · {_e(note)}</div></td>"
            f"<td>{_replicated(c)}</td></tr>")
        if c.confirmatory.verdict == NOT_TESTED and not c.confirmatory.cells:
            rows.append(f"<tr class='comparison'><td class='indent2' colspan='9'>{_e(c.confirmatory.reason)}</td></tr>")
        rows.append(_rows(c, fmt))
    head = ("<tr><th class='wide'>claim · comparison</th><th>exploratory estimate [CI]</th><th>p</th><th>verdict</th>"
            "<th class='nowrap'>seeds</th><th>confirmatory estimate [CI]</th><th>p (one-sided)</th><th>verdict</th>"
            "<th>replicated?</th></tr>")
    skipped = ""
    if untested:
        items = "".join(f"<li><span class='cid'>{_e(c.claim.id)}</span>: {_e(c.exploratory.reason)}</li>"
                        for c in untested)
        skipped = (f"<details><summary>{len(untested)} claim(s) tested on neither sweep</summary>"
                   f"<ul class='notes'>{items}</ul></details>")
    return (f"<p class='lead'>Exploratory sweep <code>{_e(exploratory)}</code>, confirmatory sweep "
            f"<code>{_e(confirmatory)}</code> (the same grid on fresh seeds): <b>{done} of {findings}</b> "
            "findings replicated. A finding is replicated only when the confirmatory seeds alone support it "
            "(refute it, for a refutation), one-sided in the direction the exploratory seeds found.</p>"
            f"<div class='scroll'><table class='claims confirm'><thead>{head}</thead><tbody>{''.join(rows)}</tbody>"
            f"</table></div>{skipped}")


def plan_section(plan: ConfirmationPlan) -> str:
    """How many fresh seeds each finding's confirmation needs, and the command that runs them."""
    items = "".join(
        f"<li><span class='cid'>{_e(p.claim_id)}</span> ({_e(p.finding)}): "
        f"{'?' if math.isnan(p.seeds) else '&gt; 1000' if math.isinf(p.seeds) else int(p.seeds)} seeds per "
        f"condition{f' ({_e(p.why)})' if p.why else ''}</li>" for p in plan.claims)
    if not plan.seeds:
        return "<p class='sub'>Confirmation plan: no finding to confirm.</p>"
    return (f"<details><summary>Confirmation plan: {plan.needed} fresh seeds per condition confirm every finding "
            "with its claim's power</summary>"
            "<p>From the exploratory effects and spreads: the seeds per condition at which each finding's "
            "confirmatory test has its claim's power (a claim over k alphas asks power<sup>1/k</sup> of each, so "
            "that all pass together with the claim's power). A finding is believed once fresh seeds confirm it.</p>"
            f"<ul class='notes'>{items}</ul></details>"
            f"<p class='sub'>Run it with: <code>{_e(plan.command)}</code></p>")
