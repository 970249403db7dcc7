"""Findings that replicate: an exploratory sweep's verdicts re-tested on a confirmatory sweep of the
same grid on fresh seeds, and the plan of that confirmation.

A verdict on one draw of seeds is a finding only once a second, independent draw confirms it
(Leavitt & Morcos, "Towards falsifiable interpretability research"). The two sweeps must hold
the same conditions (alphas, lambdas, schedules) of the same recipe (model, data, every training
setting) on disjoint seeds: :func:`check_same_grid` refuses anything else, naming the difference.

What each claim's exploratory verdict found decides what the confirmatory seeds test:

- **supported**: the claim as written, one-sided in its own direction, at every alpha of its
  group (the same intersection-union test): *replicated* when the confirmatory seeds support it;
- **refuted**: the opposite one-sided test at the alphas where the exploratory seeds refuted it
  (Holm over those alphas): *replicated* when the confirmatory seeds refute it there;
- **written after exploration** (``registered: confirmation``): the claim was chosen after its
  exploratory result was seen, so that result is no test; the confirmatory seeds decide it, and
  it is *replicated* when they support it;
- **no finding** (inconclusive, not tested): nothing to replicate; the confirmatory verdict is shown
  for what it is, and is exploratory in its turn.

The confirmatory test uses only the confirmatory seeds. Under no effect a finding that was
"supported" by chance is confirmed with probability at most the claim's ``alpha_level``; a true
effect is confirmed with the power the plan asked for (tests in tests/report/test_confirm.py).

:func:`plan_confirmation` sizes the confirmation from the exploratory effect and spread: per
claim, the seeds at which the confirmatory test has the claim's power (a claim over k alphas asks
power^(1/k) of each, so that all k pass together with the claim's power), and the one sweep
command that runs them on seeds disjoint from the exploratory ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from ...runs import write_text
from ..cells import CELL_COLUMNS, SCHEDULE_COLUMNS, WITHIN_CELL, is_setting
from .evaluate import evaluate_claim
from .results import CLAIMS_CSV_COLUMNS, NOT_TESTED, REFUTED, SUPPORTED, ClaimResult, claims_table
from .schema import AlphaSelector, Claim, ReportError

__all__ = ["FINDINGS", "Confirmation", "ClaimPlan", "ConfirmationPlan", "check_same_grid", "confirm_claims",
           "confirmation_table", "finding_of", "plan_confirmation", "replicated_share"]

#: What an exploratory verdict found, as the confirmation reads it.
SUPPORTED_FINDING, REFUTED_FINDING, AFTER, NO_FINDING = ("supported", "refuted", "written after exploration",
                                                         "no finding")
FINDINGS = (SUPPORTED_FINDING, REFUTED_FINDING, AFTER, NO_FINDING)

#: The columns that say which condition a run is (the grid), not how it was trained (the recipe).
_CONDITION_COLUMNS = ("alpha", "kind", "lambda", *SCHEDULE_COLUMNS, "regularizer.alpha", "regularizer.lambda",
                      "regularizer.kind", "regularizer.embeddings", "regularizer.embeddings_file",
                      "regularizer.encoder", "regularizer.encoder_weights")


# --------------------------------------------------------------------------- the same grid, fresh seeds


def _done(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["status"] == "completed"] if "status" in results.columns else results


def _conditions(results: pd.DataFrame) -> set[tuple]:
    """The grid's conditions: (kind, alpha, lambda, schedule) of every planned run."""
    kind = results["kind"] if "kind" in results.columns else pd.Series("si", index=results.index)
    lam = results["lambda"] if "lambda" in results.columns else pd.Series(0.0, index=results.index)
    schedule = results["schedule"] if "schedule" in results.columns else pd.Series(None, index=results.index)
    return {(str(k), round(float(a), 9), round(float(l), 9), None if pd.isna(s) else str(s))
            for k, a, l, s in zip(kind.fillna("si"), results["alpha"], lam.fillna(0.0), schedule, strict=True)}


def _condition_text(condition: tuple) -> str:
    kind, alpha, lam, schedule = condition
    if schedule:
        return f"schedule {schedule}"
    return f"lambda {lam:g}" if kind == "monoloss" else f"alpha {alpha:g}"


def _recipe_columns(results: pd.DataFrame) -> list[str]:
    """Columns that say how the runs were trained: model, dataset and every training setting except
    the condition, the seed and how or where a run was computed (``WITHIN_CELL``)."""
    out = [c for c in CELL_COLUMNS if c in results.columns]
    if "data_sha256" in results.columns:
        out.append("data_sha256")
    for column in results.columns:
        text = str(column)
        if not is_setting(text) or text in _CONDITION_COLUMNS:
            continue
        if any(text == key or (key.endswith(".") and text.startswith(key)) for key in WITHIN_CELL):
            continue
        out.append(text)
    return out


def _values(frame: pd.DataFrame, column: str) -> list[str]:
    if column not in frame.columns:
        return ["(absent)"]
    return sorted({str(v) for v in frame[column].dropna()} or {"(none)"})


def _seeds(results: pd.DataFrame) -> set[int]:
    return {int(s) for s in results["seed"].dropna()}


def check_same_grid(exploratory: pd.DataFrame, confirmatory: pd.DataFrame) -> None:
    """Refuse, with a one-line :class:`ReportError` naming the difference, two sweeps that are not one
    grid on disjoint seeds: other conditions, another recipe (model, data, any training setting),
    or a seed in both."""
    shared = sorted(_seeds(exploratory) & _seeds(confirmatory))
    if shared:
        raise ReportError(f"the confirmatory sweep reuses the exploratory seed(s) {', '.join(map(str, shared[:10]))}"
                          f"{' ...' if len(shared) > 10 else ''}: a confirmation needs fresh seeds (disjoint from "
                          f"{_seed_range(_seeds(exploratory))})")
    a, b = _conditions(exploratory), _conditions(confirmatory)
    if a != b:
        only_a = ", ".join(_condition_text(c) for c in sorted(a - b, key=str))
        only_b = ", ".join(_condition_text(c) for c in sorted(b - a, key=str))
        parts = [f"{only_a} only in the exploratory sweep" if only_a else "",
                 f"{only_b} only in the confirmatory sweep" if only_b else ""]
        raise ReportError("the two sweeps are not one grid: " + "; ".join(p for p in parts if p))
    done_a, done_b = _done(exploratory), _done(confirmatory)
    for column in dict.fromkeys(_recipe_columns(done_a) + _recipe_columns(done_b)):
        va, vb = _values(done_a, column), _values(done_b, column)
        if va != vb:
            raise ReportError(f"the two sweeps are not one grid: {column} is {', '.join(va)} in the exploratory "
                              f"sweep but {', '.join(vb)} in the confirmatory one")


def _seed_range(seeds: set[int]) -> str:
    s = sorted(seeds)
    if s and s == list(range(s[0], s[-1] + 1)):
        return f"seeds {s[0]}-{s[-1]}" if len(s) > 1 else f"seed {s[0]}"
    return "seeds " + ", ".join(map(str, s))


# --------------------------------------------------------------------------- findings and their test


def finding_of(result: ClaimResult) -> str:
    """What a claim's exploratory verdict found: one of :data:`FINDINGS`."""
    if result.claim.after_exploration:
        return AFTER
    if result.verdict == SUPPORTED:
        return SUPPORTED_FINDING
    if result.verdict == REFUTED:
        return REFUTED_FINDING
    return NO_FINDING


def _refuted_alphas(result: ClaimResult) -> list[float]:
    return sorted({c.alpha for c in result.comparisons if c.verdict == REFUTED and not math.isnan(c.alpha)})


def _tested_claim(result: ClaimResult) -> Claim:
    """The claim the confirmatory seeds test: as written, or, for a refutation found at some alphas,
    the claim at those alphas (its opposite test is what decides 'refuted')."""
    claim = result.claim
    if finding_of(result) == REFUTED_FINDING and not claim.is_trend:
        alphas = _refuted_alphas(result)
        if alphas:
            return dataclasses.replace(claim, group=AlphaSelector(values=tuple(alphas)))
    return claim


@dataclass(frozen=True)
class Confirmation:
    """A claim's exploratory verdict and its test on the confirmatory seeds.

    ``finding``: what the exploratory seeds found (:data:`FINDINGS`); ``confirmatory``: the verdict of
    the claim that finding leads to (:func:`_tested_claim`) on the confirmatory seeds alone;
    ``replicated``: True or False for a finding, None when there is nothing to replicate.
    """

    exploratory: ClaimResult
    confirmatory: ClaimResult
    finding: str

    @property
    def claim(self) -> Claim:
        return self.exploratory.claim

    @property
    def replicated(self) -> bool | None:
        if self.finding == NO_FINDING or self.confirmatory.verdict == NOT_TESTED:
            return None
        wanted = REFUTED if self.finding == REFUTED_FINDING else SUPPORTED
        return self.confirmatory.verdict == wanted

    @property
    def status(self) -> str:
        """'replicated', 'not replicated', 'no exploratory finding' or 'not tested on the confirmation'."""
        if self.confirmatory.verdict == NOT_TESTED:
            return "not tested on the confirmation"
        if self.replicated is None:
            return "no exploratory finding"
        return "replicated" if self.replicated else "not replicated"


def confirm_claims(exploratory: pd.DataFrame, confirmatory: pd.DataFrame, claims: list[Claim], *,
                   level: float = 0.95, explored: list[ClaimResult] | None = None,
                   dunnett: bool = False) -> list[Confirmation]:
    """Every claim's exploratory verdict (``explored``, or computed here) and its confirmatory test.

    Raises :class:`ReportError` when the sweeps are not one grid on disjoint seeds.
    """
    check_same_grid(exploratory, confirmatory)
    if explored is None:
        explored = [evaluate_claim(exploratory, c, level=level, dunnett=dunnett) for c in claims]
    out = []
    for result in explored:
        confirmed = evaluate_claim(confirmatory, _tested_claim(result), level=level, dunnett=dunnett)
        out.append(Confirmation(result, confirmed, finding_of(result)))
    return out


#: claims.csv's columns of the confirmation, after the exploratory ones.
CONFIRM_COLUMNS = ["finding", "confirm_n_group", "confirm_n_baseline", "confirm_estimate", "confirm_ci_low",
                   "confirm_ci_high", "confirm_p_support", "confirm_p_against", "confirm_alpha_verdict",
                   "confirm_verdict", "replicated", "planned_seeds"]


def confirmation_table(confirmations: list[Confirmation], level: float = 0.95,
                       plan: ConfirmationPlan | None = None) -> pd.DataFrame:
    """claims.csv with the confirmation: the exploratory rows (:func:`claims_table`) and, beside each
    (claim, cell, alpha), the confirmatory seeds' numbers and verdicts, the finding and whether it
    replicated (claim level), and the seeds the plan asks for."""
    base = claims_table([c.exploratory for c in confirmations], level)
    other = claims_table([c.confirmatory for c in confirmations], level)
    keys = [k for k in base.columns if k in CLAIMS_CSV_COLUMNS[:3] or k not in CLAIMS_CSV_COLUMNS]
    keys = [k for k in keys if k in other.columns] + ["alpha"]
    renamed = other[keys + ["n_group", "n_baseline", "estimate", "ci_low", "ci_high", "p_support", "p_against",
                            "alpha_verdict", "claim_verdict"]].rename(columns={
        "n_group": "confirm_n_group", "n_baseline": "confirm_n_baseline", "estimate": "confirm_estimate",
        "ci_low": "confirm_ci_low", "ci_high": "confirm_ci_high", "p_support": "confirm_p_support",
        "p_against": "confirm_p_against", "alpha_verdict": "confirm_alpha_verdict",
        "claim_verdict": "confirm_verdict"})
    merged = base.merge(renamed.astype({k: str for k in keys if k != "alpha"}),
                        on=keys, how="outer", suffixes=("", "_c")) if len(base) else renamed
    by_claim = {c.claim.id: c for c in confirmations}
    planned = {p.claim_id: p.seeds for p in plan.claims} if plan is not None else {}
    merged["finding"] = [by_claim[i].finding if i in by_claim else "" for i in merged["claim"]]
    merged["replicated"] = [_yes_no(by_claim[i].replicated) if i in by_claim else "" for i in merged["claim"]]
    merged["confirm_verdict"] = [by_claim[i].confirmatory.verdict if i in by_claim else "" for i in merged["claim"]]
    merged["planned_seeds"] = [planned.get(i, math.nan) for i in merged["claim"]]
    columns = list(base.columns) + [c for c in CONFIRM_COLUMNS if c not in base.columns]
    return merged.reindex(columns=columns)


def _yes_no(value: bool | None) -> str:
    return "" if value is None else "yes" if value else "no"


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ClaimPlan:
    """Seeds per condition at which one claim's confirmatory test has the claim's power."""

    claim_id: str
    finding: str
    seeds: float  # inf: no number of seeds (up to 1000) gives the power at the observed effect; nan: unknown
    power: float  # the power each alpha's test is asked for, so that all of them pass with the claim's
    why: str = ""


@dataclass(frozen=True)
class ConfirmationPlan:
    """The seeds a confirmation needs, per claim and in all, and the sweep command that runs them."""

    claims: tuple[ClaimPlan, ...]
    seeds: tuple[int, ...]
    command: str
    config: Path | None

    @property
    def needed(self) -> int:
        return len(self.seeds)

    def lines(self) -> list[str]:
        """The plan as the report prints it."""
        out = ["confirmation plan (from the exploratory effects and spreads; seeds per condition for each "
               "finding's test to pass with its claim's power):"]
        for p in self.claims:
            seeds = "?" if math.isnan(p.seeds) else "> 1000" if math.isinf(p.seeds) else f"{int(p.seeds)}"
            out.append(f"  {p.claim_id}: {p.finding}, {seeds} seeds" + (f" ({p.why})" if p.why else ""))
        if self.seeds:
            out.append(f"run: {self.command}")
        else:
            out.append("no finding to confirm")
        return out


def _claim_plan(results: pd.DataFrame, result: ClaimResult, level: float) -> ClaimPlan:
    finding = finding_of(result)
    claim = _tested_claim(result)
    if finding == REFUTED_FINDING:  # one alpha refuting again suffices: the fewest seeds over the refuted ones
        again = evaluate_claim(results, claim, level=level)
        return ClaimPlan(claim.id, finding, again.seeds_to_refute, claim.power)
    alphas = max(1, max((len(c.comparisons) for c in result.cells), default=1))
    each = claim.power ** (1.0 / alphas)  # every alpha must pass: each with power^(1/k), all with power
    planned = evaluate_claim(results, dataclasses.replace(claim, power=each), level=level)
    why = "" if not math.isinf(planned.seeds_to_support) else "the exploratory effect points the other way or is 0"
    return ClaimPlan(claim.id, finding, planned.seeds_to_support, each, why)


def plan_confirmation(sweep_dir: str | Path, results: pd.DataFrame, explored: list[ClaimResult],
                      level: float = 0.95, out: str | Path | None = None, min_seeds: int = 2) -> ConfirmationPlan:
    """Seeds for each finding's confirmatory test (supported, refuted or written after exploration), the
    largest finite one for the sweep, and the sweep command on seeds disjoint from the exploratory ones.

    The command's config is the exploratory sweep's own (``sweep.json``'s base config), written to
    ``DIR/confirmation.yaml`` so that the confirmation trains exactly the same recipe.
    """
    root = Path(sweep_dir)
    plans = tuple(_claim_plan(results, r, level) for r in explored if finding_of(r) != NO_FINDING)
    finite = [p.seeds for p in plans if math.isfinite(p.seeds)]
    n = int(max([min_seeds, *finite])) if finite else 0
    first = max(_seeds(results), default=-1) + 1
    seeds = tuple(range(first, first + n))
    config, command = _command(root, results, seeds, out)
    return ConfirmationPlan(plans, seeds, command, config)


def _command(root: Path, results: pd.DataFrame, seeds: tuple[int, ...], out) -> tuple[Path | None, str]:
    manifest = root / "sweep.json"
    try:
        data = json.loads(manifest.read_text())
        base, grid, executor = data["base_config"], data["grid"], data.get("executor") or {}
    except (OSError, ValueError, KeyError, TypeError):
        return None, ("(no readable sweep.json: run the exploratory sweep's own command with "
                      f"--seeds {','.join(map(str, seeds))} and another --out)")
    config = root / "confirmation.yaml"
    write_text(config, yaml.safe_dump(base, sort_keys=False))
    parts = ["selectivity", "sweep", str(config)]
    if grid.get("schedules"):
        parts += ["--schedules", "'" + ",".join(grid["schedules"]) + "'"]
    elif grid.get("alphas"):
        parts += ["--alphas", ",".join(f"{a:g}" for a in grid["alphas"])]
    if grid.get("lambdas"):
        parts += ["--lambdas", ",".join(f"{v:g}" for v in grid["lambdas"])]
    parts += ["--seeds", ",".join(map(str, seeds)), "--out", str(out or f"{root}-confirmation")]
    if executor.get("name") and executor["name"] != "local":
        parts += ["--executor", executor["name"]]
    if executor.get("jobs"):
        parts += ["--jobs", str(executor["jobs"])]
    return config, " ".join(parts)


def replicated_share(confirmations: list[Confirmation]) -> tuple[int, int]:
    """(findings replicated, findings) over the claims that had one."""
    findings = [c for c in confirmations if c.replicated is not None]
    return sum(bool(c.replicated) for c in findings), len(findings)
