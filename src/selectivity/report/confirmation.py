"""The report's confirmation: each claim's exploratory and confirmatory verdicts side by side, and the
plan of a confirmation sweep (see :mod:`selectivity.report.claims.confirm`)."""

from __future__ import annotations

import html
import math

from .claims.confirm import AFTER, NO_FINDING, Confirmation, ConfirmationPlan, replicated_share
from .claims.results import NOT_TESTED

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


def _rows(c: Confirmation, fmt) -> str:
    """One row per comparison of the claim: exploratory and confirmatory numbers side by side."""
    explored = {(cell.label, comp.alpha): comp for cell in c.exploratory.cells for comp in cell.comparisons}
    confirmed = {(cell.label, comp.alpha): comp for cell in c.confirmatory.cells for comp in cell.comparisons}
    out = []
    for key in dict.fromkeys([*explored, *confirmed]):
        a, b = explored.get(key), confirmed.get(key)
        label = (a or b).label
        left = (f"<td class='num'>{fmt(c.claim, a)}</td><td class='num'>{_p(a.p_value)}</td>"
                f"<td>{_badge(a.verdict) if not c.claim.after_exploration else '<span class=sub>no test</span>'}</td>"
                if a else "<td colspan='3' class='sub'>—</td>")
        right = (f"<td>{b.n_group}</td><td class='num'>{fmt(c.claim, b)}</td><td class='num'>{_p(b.p_value)}</td>"
                 f"<td>{_badge(b.verdict)}</td>" if b else
                 "<td colspan='4' class='sub'>not re-tested (not part of the finding)</td>")
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
    for c in confirmations:
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
            "<th>seeds</th><th>confirmatory estimate [CI]</th><th>p (one-sided)</th><th>verdict</th>"
            "<th>finding</th></tr>")
    return (f"<p class='lead'>Exploratory sweep <code>{_e(exploratory)}</code>, confirmatory sweep "
            f"<code>{_e(confirmatory)}</code> (the same grid on fresh seeds): <b>{done} of {findings}</b> "
            "findings replicated. A finding is replicated only when the confirmatory seeds alone support it "
            "(refute it, for a refutation), one-sided in the direction the exploratory seeds found.</p>"
            f"<div class='scroll'><table class='claims'><thead>{head}</thead><tbody>{''.join(rows)}</tbody>"
            "</table></div>")


def plan_section(plan: ConfirmationPlan) -> str:
    """How many fresh seeds each finding's confirmation needs, and the command that runs them."""
    items = "".join(
        f"<li><span class='cid'>{_e(p.claim_id)}</span> ({_e(p.finding)}): "
        f"{'?' if math.isnan(p.seeds) else '&gt; 1000' if math.isinf(p.seeds) else int(p.seeds)} seeds per "
        f"condition{f' ({_e(p.why)})' if p.why else ''}</li>" for p in plan.claims)
    command = (f"<p>Run the confirmation on {plan.needed} fresh seeds (the largest need above, at least 2):</p>"
               f"<pre><code>{_e(plan.command)}</code></pre>") if plan.seeds else "<p>No finding to confirm.</p>"
    return ("<p>From the exploratory effects and spreads: the seeds per condition at which each finding's "
            "confirmatory test has its claim's power (a claim over k alphas asks power<sup>1/k</sup> of each, so "
            "that all pass together with the claim's power). A finding is believed once fresh seeds confirm it.</p>"
            f"<ul class='notes'>{items}</ul>{command}")
