"""What testing a claim gives: one :class:`Comparison` per alpha, a :class:`CellResult` per cell, a
:class:`ClaimResult` over the cells, and ``claims.csv`` (:func:`claims_table`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ...analysis import stats
from .schema import Claim

__all__ = ["SUPPORTED", "REFUTED", "INCONCLUSIVE", "NOT_TESTED", "Comparison", "CellResult", "ClaimResult",
           "CLAIMS_CSV_COLUMNS", "claims_table", "decide"]

SUPPORTED, REFUTED, INCONCLUSIVE, NOT_TESTED = "supported", "refuted", "inconclusive", "not tested"


@dataclass(frozen=True)
class Comparison:
    """One test inside a cell: an alpha against the baseline, or a trend's slope.

    ``estimate`` and ``ci`` are on the scale the claim tests: mean(x) - mean(y) in the metric's
    units, mean(x) / mean(y) for ratio claims, the slope for trends (``scale`` says which).
    ``p_value`` is the one-sided p of the claim (raw: the intersection-union test of the claim
    uses it); ``p_support_holm`` the same after Holm over the claim's alphas in the cell (this
    alpha's own verdict uses it); ``p_against`` the opposite test's p after Holm over the
    claim's alphas in the cell (``p_against_raw`` before). ``effect_size`` is d_z (paired),
    Hedges' g (unpaired), the ratio (ratio claims) or, for trends, the slopes' d_z (trend) or
    the within-seed Pearson r (association); ``effect_name`` says which.
    ``seeds_to_support`` / ``seeds_to_refute``: seeds (per alpha; pairs when paired) at which the
    one-sided test of each side has the claim's power, if the observed effect and spread are
    the truth (refuting at Holm's first step, alpha_level / number of alphas).
    ``n_failed``: planned runs of this comparison (the alpha's and the baseline's) that gave
    no value (diverged, failed, unfinished, or an infinite or missing metric), listed in
    ``failed_runs``; the claim's ``failed`` rule says how they were scored.
    """

    alpha: float
    n_group: int
    n_baseline: int
    paired: bool
    mean_group: float
    mean_baseline: float
    estimate: float
    ci: tuple[float, float]
    effect_size: float
    effect_name: str
    p_value: float
    p_against: float
    p_against_raw: float
    verdict: str
    seeds_to_support: float
    seeds_to_refute: float
    scale: str = "difference"
    interval: str = "t"
    label: str = ""
    p_support_holm: float = float("nan")
    n_failed: int = 0
    failed_runs: str = ""
    # Each side's own mean with its t interval over seeds: a reader sees what the control's draw was.
    ci_group: tuple[float, float] = (float("nan"), float("nan"))
    ci_baseline: tuple[float, float] = (float("nan"), float("nan"))
    # Many-to-one simultaneous interval and p of the difference (Dunnett), when asked for.
    dunnett_ci: tuple[float, float] = (float("nan"), float("nan"))
    dunnett_p: float = float("nan")

    @property
    def difference(self) -> float:
        return self.mean_group - self.mean_baseline


def _max_or_nan(values) -> float:
    values = list(values)
    return float("nan") if not values or any(math.isnan(v) for v in values) else max(values)


@dataclass(frozen=True)
class CellResult:
    """A claim's verdict in one cell (one model on one dataset, ...), with its comparisons.

    ``blocked``: planned runs gave no value and the claim does not say how they score, so
    its tests decided nothing (the verdict is inconclusive; the reason names the runs).
    """

    cell: tuple[tuple[str, str], ...]
    verdict: str
    reason: str = ""
    comparisons: tuple[Comparison, ...] = ()
    blocked: bool = False

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.cell) or "all runs"

    @property
    def p_value(self) -> float:
        """Intersection-union p: the largest p of the comparisons."""
        return _max_or_nan(c.p_value for c in self.comparisons)

    @property
    def seeds_to_support(self) -> float:
        """Every alpha must pass: the largest of the alphas' seeds to support."""
        return _max_or_nan(c.seeds_to_support for c in self.comparisons)

    @property
    def seeds_to_refute(self) -> float:
        """One alpha suffices: the smallest of the alphas' seeds to refute."""
        values = [c.seeds_to_refute for c in self.comparisons if not math.isnan(c.seeds_to_refute)]
        return min(values) if values else float("nan")

    @property
    def n_failed(self) -> int:
        return sum(c.n_failed for c in self.comparisons)


@dataclass(frozen=True)
class ClaimResult:
    """A claim's verdict over its cells (supported only when every cell is), and the cells'."""

    claim: Claim
    verdict: str
    reason: str = ""
    cells: tuple[CellResult, ...] = ()

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        return tuple(c for cell in self.cells for c in cell.comparisons)

    @property
    def p_value(self) -> float:
        """Intersection-union p over every cell and alpha: the largest p."""
        return _max_or_nan(c.p_value for c in self.comparisons)

    @property
    def seeds_to_support(self) -> float:
        return _max_or_nan(c.seeds_to_support for c in self.cells if c.comparisons)

    @property
    def seeds_to_refute(self) -> float:
        values = [c.seeds_to_refute for c in self.cells if not math.isnan(c.seeds_to_refute)]
        return min(values) if values else float("nan")

    @property
    def seeds_needed(self) -> float:
        """For an inconclusive claim, the seeds to support it (NaN otherwise)."""
        return self.seeds_to_support if self.verdict == INCONCLUSIVE else float("nan")


_CODES = {stats.SUPPORTED_CODE: SUPPORTED, stats.REFUTED_CODE: REFUTED, stats.INCONCLUSIVE_CODE: INCONCLUSIVE}


def decide(p_support: float, p_against: float, alpha_level: float) -> str:
    """supported if p_support < alpha_level, refuted if p_against < alpha_level, else inconclusive.

    One test; a family of alphas goes through :func:`selectivity.analysis.stats.family_verdict`
    (Holm on the refuting side). NaN p-values (too few seeds) decide nothing.
    """
    return _CODES[int(stats.family_verdict([p_support], [p_against], alpha_level).claim)]


# --------------------------------------------------------------------------- verdict table

#: The columns of ``claims.csv``, in order; cell columns other than model and dataset follow
#: ``dataset``.
CLAIMS_CSV_COLUMNS = ["claim", "model", "dataset", "alpha", "comparison", "metric", "test", "scale", "n_group",
                      "n_baseline", "paired", "n_failed", "failed_runs", "failed_rule", "estimate", "ci_low",
                      "ci_high", "interval", "effect_size", "effect_name", "p_support", "p_support_holm",
                      "p_against", "p_against_raw", "alpha_verdict", "verdict", "claim_verdict", "seeds_to_support",
                      "seeds_to_refute", "cell_seeds_to_support", "cell_seeds_to_refute", "level", "reason"]


def claims_table(results: list[ClaimResult], level: float = 0.95) -> pd.DataFrame:
    """One row per (claim, cell, alpha) (one per cell for trends; one per claim when not tested).

    ``p_support`` is raw (every alpha's must pass: the intersection-union test), ``p_support_holm``
    and ``p_against`` are Holm-adjusted over the claim's alphas in the cell (``alpha_verdict``
    uses them); ``verdict`` is the claim's verdict in the cell, ``claim_verdict`` over all cells.
    ``n_failed`` / ``failed_runs``: planned runs of the row without a value; ``failed_rule``: how
    the claim scores them (empty: it does not, and they keep the claim undecided).
    """
    rows, extra = [], []
    for r in results:
        c = r.claim
        base = {"claim": c.id, "metric": c.metric, "test": c.test, "claim_verdict": r.verdict, "level": level,
                "failed_rule": c.failed_text}
        if not r.cells:
            rows.append({**base, "verdict": r.verdict, "reason": r.reason})
            continue
        for cell in r.cells:
            names = dict(cell.cell)
            extra += [k for k in names if k not in ("model", "dataset") and k not in extra]
            head = {**base, **names, "verdict": cell.verdict, "reason": cell.reason or r.reason,
                    "cell_seeds_to_support": cell.seeds_to_support, "cell_seeds_to_refute": cell.seeds_to_refute}
            if not cell.comparisons:
                rows.append(head)
            for comp in cell.comparisons:
                rows.append({**head, "alpha": comp.alpha, "comparison": comp.label, "scale": comp.scale,
                             "n_group": comp.n_group, "n_baseline": comp.n_baseline, "paired": comp.paired,
                             "n_failed": comp.n_failed, "failed_runs": comp.failed_runs,
                             "estimate": comp.estimate, "ci_low": comp.ci[0], "ci_high": comp.ci[1],
                             "interval": comp.interval, "effect_size": comp.effect_size,
                             "effect_name": comp.effect_name, "p_support": comp.p_value,
                             "p_support_holm": comp.p_support_holm,
                             "p_against": comp.p_against, "p_against_raw": comp.p_against_raw,
                             "alpha_verdict": comp.verdict, "seeds_to_support": comp.seeds_to_support,
                             "seeds_to_refute": comp.seeds_to_refute})
    columns = CLAIMS_CSV_COLUMNS[:3] + extra + CLAIMS_CSV_COLUMNS[3:]
    frame = pd.DataFrame(rows).reindex(columns=columns)
    # Counts as integers and the design as a boolean, empty where a cell was not tested.
    return frame.astype({"n_group": "Int64", "n_baseline": "Int64", "n_failed": "Int64", "paired": "boolean"})
