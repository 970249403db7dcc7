"""Claims: the papers' statements written as hypotheses and tested across seeds.

A claim compares one metric between a group of runs (an alpha, or every alpha matching a
condition) and the baseline (alpha = 0 by default) through the contrast

    c = mean over seeds of metric(group) - ratio * mean over seeds of metric(baseline)

and a one-sided t test (or TOST) on c. The verdict, at level ``alpha_level``:

- supported: the test of the claim rejects its negation (p < alpha_level);
- refuted: the opposite one-sided test rejects the claim (the data show the contrary);
- inconclusive: neither; the report gives the seeds a decisive answer would need;
- not tested: the sweep has no runs for the claim's alphas (or its ``where`` filter).

A group of several alphas is an intersection-union test: supported when every alpha is,
refuted when any alpha is. Seeds pair when both groups hold the same seeds (paired t test on
x_i - ratio * y_i), otherwise the groups are independent (Welch). The schema is documented
in ``claims.yaml``, the default claims.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..analysis import stats

__all__ = [
    "ReportError",
    "ClaimsError",
    "TESTS",
    "AlphaSelector",
    "Claim",
    "Comparison",
    "ClaimResult",
    "default_claims_path",
    "load_claims",
    "parse_claims",
    "decide",
    "evaluate_claim",
    "evaluate_claims",
]

SUPPORTED, REFUTED, INCONCLUSIVE, NOT_TESTED = "supported", "refuted", "inconclusive", "not tested"


class ReportError(ValueError):
    """A sweep directory or a claims file that cannot be reported as asked."""


class ClaimsError(ReportError):
    """A claims file that does not follow the schema; the message names the file and the claim."""


@dataclass(frozen=True)
class TestSpec:
    """How a test type maps onto the contrast c = mean(x) - ratio * mean(y).

    side: 'greater' (claim c > null), 'less' (claim c < null) or 'equivalence' (|c| < margin).
    sign: null = sign * margin for difference tests.
    """

    __test__ = False  # not a pytest class

    side: str
    needs: str | None  # the parameter that must be given: 'margin', 'ratio' or None
    sign: float = 0.0
    margin_optional: bool = False


#: The test types a claim may name. ``margin`` is in the metric's units (accuracy is a
#: fraction: 0.01 is one point); ``ratio`` multiplies the baseline's mean.
TESTS: dict[str, TestSpec] = {
    "greater": TestSpec("greater", None, sign=+1, margin_optional=True),        # x > y (+ margin)
    "less": TestSpec("less", None, sign=-1, margin_optional=True),              # x < y (- margin)
    "noninferiority": TestSpec("greater", "margin", sign=-1),                    # x > y - margin
    "nonsuperiority": TestSpec("less", "margin", sign=+1),                       # x < y + margin
    "equivalence": TestSpec("equivalence", "margin"),                            # |x - y| < margin
    "ratio_at_most": TestSpec("less", "ratio"),                                  # x < ratio * y
    "ratio_at_least": TestSpec("greater", "ratio"),                              # x > ratio * y
}

_KEYS = {"id", "statement", "source", "metric", "group", "baseline", "test", "margin", "ratio", "alpha_level",
         "power", "where"}
_DEFAULT_KEYS = {"alpha_level", "power", "baseline"}
_REQUIRED = ("id", "statement", "metric", "group", "test")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMPARISON = re.compile(r"^\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def _same(a: float, b) -> np.ndarray:
    return np.isclose(a, b, rtol=1e-9, atol=1e-12)


def _number(value) -> float | None:
    """A YAML number (or a string holding one), else None; booleans are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class AlphaSelector:
    """Which alphas a claim's group covers: listed values, or a comparison such as '>= 1'."""

    values: tuple[float, ...] = ()
    op: str | None = None
    bound: float | None = None

    @classmethod
    def parse(cls, value, where: str) -> AlphaSelector:
        if isinstance(value, dict):
            if set(value) != {"alpha"}:
                raise ClaimsError(f"{where}: expected a mapping with the single key 'alpha', got keys {sorted(value)}")
            value = value["alpha"]
        if isinstance(value, list):
            numbers = [_number(v) for v in value]
            if not value or any(n is None for n in numbers):
                raise ClaimsError(f"{where}: expected a non-empty list of alpha values, got {value!r}")
            return cls(values=tuple(numbers))
        number = _number(value)
        if number is not None:
            return cls(values=(number,))
        match = _COMPARISON.match(value) if isinstance(value, str) else None
        if match is None:
            raise ClaimsError(f"{where}: expected an alpha value (-1), a list ([1, 2.5]) or a comparison "
                              f"('>= 1', '< 0'), got {value!r}")
        return cls(op=match.group(1), bound=float(match.group(2)))

    @property
    def single(self) -> float | None:
        return self.values[0] if self.op is None and len(self.values) == 1 else None

    def __str__(self) -> str:
        if self.op is not None:
            return f"alpha {self.op} {self.bound:g}"
        return "alpha = " + ", ".join(f"{v:g}" for v in self.values)

    def select(self, alphas) -> tuple[list[float], list[float]]:
        """(matched alphas of the sweep, listed alphas the sweep lacks)."""
        alphas = sorted(set(float(a) for a in alphas))
        if self.op is not None:
            return [a for a in alphas if _OPS[self.op](a, self.bound)], []
        found = [a for a in alphas if any(_same(a, v) for v in self.values)]
        missing = [v for v in self.values if not any(_same(a, v) for a in alphas)]
        return found, missing


@dataclass(frozen=True)
class Claim:
    """One hypothesis, as written in a claims file (see ``claims.yaml`` for the fields)."""

    id: str
    statement: str
    metric: str
    group: AlphaSelector
    test: str
    baseline: float = 0.0
    margin: float | None = None
    ratio: float | None = None
    alpha_level: float = 0.05
    power: float = 0.8
    where: dict = field(default_factory=dict)
    source: str = ""
    origin: str = ""

    @property
    def spec(self) -> TestSpec:
        return TESTS[self.test]

    @property
    def contrast_ratio(self) -> float:
        return self.ratio if self.ratio is not None else 1.0

    @property
    def null(self) -> float:
        """The boundary of the one-sided claim on c (the margin for an equivalence)."""
        if self.spec.side == "equivalence":
            return float(self.margin)
        return self.spec.sign * self.margin if self.margin else 0.0

    def hypothesis(self) -> str:
        """The claim on the contrast, in symbols: 'm(-1) - m(0) > -0.01'."""
        a = "α" if self.group.single is None else f"{self.group.single:g}"
        x, y = f"m({a})", f"m({self.baseline:g})"
        if self.spec.side == "equivalence":
            text = f"|{x} − {y}| < {self.margin:g}"
        else:
            op = ">" if self.spec.side == "greater" else "<"
            if self.ratio is not None:
                text = f"{x} {op} {self.ratio:g} × {y}"
            else:
                text = f"{x} − {y} {op} {self.null:g}"
        text = text.replace("-", "−")
        return text if self.group.single is not None else f"{text} for every {self.group}"


def _claim_where(origin: str, index: int, raw) -> str:
    name = raw.get("id") if isinstance(raw, dict) else None
    return f"{origin}: claim '{name}'" if name else f"{origin}: claim #{index + 1}"


def _parse_claim(raw, index: int, origin: str, defaults: dict) -> Claim:
    where = _claim_where(origin, index, raw)
    if not isinstance(raw, dict):
        raise ClaimsError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ClaimsError(f"{where}: unknown field(s) {sorted(unknown)}; known fields: {sorted(_KEYS)}")
    missing = [k for k in _REQUIRED if raw.get(k) in (None, "")]
    if missing:
        raise ClaimsError(f"{where}: missing required field(s) {missing}")
    for key in ("id", "statement", "metric", "test", "source"):
        if key in raw and not isinstance(raw[key], str):
            raise ClaimsError(f"{where}: '{key}' must be text, got {raw[key]!r}")
    if not _ID.match(raw["id"]):
        raise ClaimsError(f"{where}: id must be letters, digits, '_', '.' or '-', got {raw['id']!r}")
    test = raw["test"]
    if test not in TESTS:
        raise ClaimsError(f"{where}: unknown test {test!r}; known tests: {', '.join(TESTS)}")
    spec = TESTS[test]
    values = {}
    for key in ("margin", "ratio"):
        if raw.get(key) is None:
            values[key] = None
            continue
        number = _number(raw[key])
        if number is None or not number > 0 or not math.isfinite(number):
            raise ClaimsError(f"{where}: '{key}' must be a positive number, got {raw[key]!r}")
        values[key] = number
    if spec.needs and values[spec.needs] is None:
        raise ClaimsError(f"{where}: test '{test}' needs '{spec.needs}'")
    allowed = {spec.needs} | ({"margin"} if spec.margin_optional else set())
    extra = [k for k in ("margin", "ratio") if values[k] is not None and k not in allowed]
    if extra:
        raise ClaimsError(f"{where}: test '{test}' takes no '{extra[0]}'")
    settings = {**defaults, **{k: raw[k] for k in ("alpha_level", "power") if k in raw}}
    alpha_level, power = _number(settings.get("alpha_level", 0.05)), _number(settings.get("power", 0.8))
    if alpha_level is None or not 0 < alpha_level < 0.5:
        raise ClaimsError(f"{where}: alpha_level must be a number in (0, 0.5), got {settings.get('alpha_level')!r}")
    if power is None or not 0 < power < 1:
        raise ClaimsError(f"{where}: power must be a number in (0, 1), got {settings.get('power')!r}")
    group = AlphaSelector.parse(raw["group"], f"{where}, group")
    baseline = AlphaSelector.parse(raw.get("baseline", defaults.get("baseline", 0.0)), f"{where}, baseline")
    if baseline.single is None:
        raise ClaimsError(f"{where}: baseline must be one alpha value (e.g. 0), got {raw.get('baseline')!r}")
    filters = raw.get("where") or {}
    if not isinstance(filters, dict) or any(not isinstance(v, (str, int, float, list)) for v in filters.values()):
        raise ClaimsError(f"{where}: 'where' must map results columns to a value or a list of values, got {filters!r}")
    return Claim(id=raw["id"], statement=" ".join(raw["statement"].split()), metric=raw["metric"], group=group,
                 test=test, baseline=baseline.single, margin=values["margin"], ratio=values["ratio"],
                 alpha_level=alpha_level, power=power, where=dict(filters), source=raw.get("source", ""),
                 origin=origin)


def parse_claims(data, origin: str = "<claims>") -> list[Claim]:
    """Claims from parsed YAML: a mapping with ``claims`` (and optional ``defaults``), or a bare list."""
    if isinstance(data, list):
        data = {"claims": data}
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ClaimsError(f"{origin}: expected a mapping with a 'claims' list (or a list of claims)")
    unknown = set(data) - {"claims", "defaults"}
    if unknown:
        raise ClaimsError(f"{origin}: unknown top-level key(s) {sorted(unknown)}; expected 'claims' and 'defaults'")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - _DEFAULT_KEYS:
        raise ClaimsError(f"{origin}: 'defaults' may set only {sorted(_DEFAULT_KEYS)}, got {defaults!r}")
    claims, seen = [], {}
    for index, raw in enumerate(data["claims"]):
        claim = _parse_claim(raw, index, origin, defaults)
        if claim.id in seen:
            raise ClaimsError(f"{origin}: claim '{claim.id}' is defined twice (#{seen[claim.id] + 1} and #{index + 1})")
        seen[claim.id] = index
        claims.append(claim)
    return claims


def default_claims_path() -> Path:
    """The claims shipped with the package: the papers' headline statements."""
    return Path(str(resources.files("selectivity.report") / "claims.yaml"))


def load_claims(*paths: str | Path, defaults: bool = True) -> list[Claim]:
    """Claims from ``claims.yaml`` (unless ``defaults=False``) followed by each file in ``paths``.

    An id may appear only once across all files.
    """
    sources = ([default_claims_path()] if defaults else []) + [Path(p) for p in paths]
    claims: list[Claim] = []
    for path in sources:
        try:
            text = path.read_text()
        except OSError as err:
            raise ClaimsError(f"cannot read claims file {path}: {err.strerror or err}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ClaimsError(f"{path} is not valid YAML: {err}") from None
        for claim in parse_claims(data, origin=path.name if path == default_claims_path() else str(path)):
            clash = next((c for c in claims if c.id == claim.id), None)
            if clash is not None:
                raise ClaimsError(f"{claim.origin}: claim '{claim.id}' is already defined in {clash.origin}; "
                                  "pick another id (or leave out the default claims)")
            claims.append(claim)
    return claims


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Comparison:
    """One alpha against the baseline. ``estimate`` is mean(x) - mean(y), or mean(x) / mean(y)
    for ratio tests; ``ci`` is its bootstrap interval; ``effect_size`` Hedges' g between groups."""

    alpha: float
    n_group: int
    n_baseline: int
    paired: bool
    mean_group: float
    mean_baseline: float
    difference: float
    estimate: float
    ci: tuple[float, float]
    effect_size: float
    p_value: float
    p_against: float
    verdict: str
    seeds_needed: float


@dataclass(frozen=True)
class ClaimResult:
    """A claim's verdict with the comparisons behind it (one per alpha of its group)."""

    claim: Claim
    verdict: str
    reason: str = ""
    comparisons: tuple[Comparison, ...] = ()

    @property
    def p_value(self) -> float:
        """Intersection-union p: the largest p of the comparisons."""
        ps = [c.p_value for c in self.comparisons]
        return float("nan") if not ps or any(math.isnan(p) for p in ps) else max(ps)

    @property
    def seeds_needed(self) -> float:
        """For an inconclusive claim, the most seeds any undecided comparison needs."""
        if self.verdict != INCONCLUSIVE:
            return float("nan")
        needs = [c.seeds_needed for c in self.comparisons if c.verdict == INCONCLUSIVE]
        return float("nan") if not needs or any(math.isnan(n) for n in needs) else max(needs)


def decide(p_support: float, p_against: float, alpha_level: float) -> str:
    """supported if p_support < alpha_level, refuted if p_against < alpha_level, else inconclusive.

    p_support tests H0 "the claim is false" against the claim; p_against tests H0 "the claim
    holds (at its boundary)" against the contrary. NaN p-values (too few seeds) decide nothing.
    """
    if p_support < alpha_level:
        return SUPPORTED
    if p_against < alpha_level:
        return REFUTED
    return INCONCLUSIVE


def _per_seed(frame: pd.DataFrame, metric: str, alpha: float) -> pd.Series:
    """Metric per seed at one alpha (a seed run twice counts once, at its mean)."""
    rows = frame[_same(frame["alpha"].to_numpy(dtype=float), alpha)]
    return rows.groupby("seed")[metric].mean().sort_index()


def _pooled_sd(frame: pd.DataFrame, metric: str) -> float:
    """Within-alpha seed-to-seed sd, pooled over the alphas with two seeds or more."""
    groups = [g.groupby("seed")[metric].mean() for _, g in frame.groupby("alpha")]
    dfs = np.array([len(g) - 1 for g in groups if len(g) > 1], dtype=float)
    if dfs.sum() == 0:
        return float("nan")
    ss = sum(float(((g - g.mean()) ** 2).sum()) for g in groups if len(g) > 1)
    return math.sqrt(ss / dfs.sum())


def _decisive_distances(claim: Claim, estimate: float) -> list[float]:
    """How far the observed contrast is from each boundary a decisive test would have to clear."""
    if claim.spec.side == "equivalence":
        m = claim.margin
        return [m - estimate, estimate + m] if abs(estimate) < m else [abs(estimate) - m]
    gap = estimate - claim.null
    return [abs(gap)] if gap != 0 else [0.0]


def _compare(claim: Claim, x: pd.Series, y: pd.Series, alpha: float, pooled_sd: float, level: float, n_boot: int,
             seed: int) -> Comparison:
    paired = len(x) > 1 and list(x.index) == list(y.index)
    xv, yv = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
    r, side = claim.contrast_ratio, claim.spec.side
    if side == "equivalence":
        support = stats.equivalence_test(xv, yv, claim.margin, ratio=r, paired=paired)
        upper = stats.contrast_test(xv, yv, alternative="greater", null=claim.margin, ratio=r, paired=paired)
        lower = stats.contrast_test(xv, yv, alternative="less", null=-claim.margin, ratio=r, paired=paired)
        p_against = float(np.fmin(upper.p_value, lower.p_value))
    else:
        opposite = "less" if side == "greater" else "greater"
        support = stats.contrast_test(xv, yv, alternative=side, null=claim.null, ratio=r, paired=paired)
        p_against = stats.contrast_test(xv, yv, alternative=opposite, null=claim.null, ratio=r, paired=paired).p_value
    verdict = decide(support.p_value, p_against, claim.alpha_level)

    ratio_test = claim.ratio is not None
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = float(xv.mean() / yv.mean()) if ratio_test else float(xv.mean() - yv.mean())
    if len(xv) > 1 and len(yv) > 1:
        ci = stats.bootstrap_ci(xv, yv, statistic="ratio" if ratio_test else "difference", paired=paired,
                                level=level, n_boot=n_boot, seed=seed)
    else:
        ci = (float("nan"), float("nan"))

    needed = float("nan")
    if verdict == INCONCLUSIVE:
        distances = _decisive_distances(claim, float(support.estimate))
        if paired:
            needed = stats.seeds_needed(distances, float(np.std(xv - r * yv, ddof=1)), paired=True,
                                        alpha_level=claim.alpha_level, power=claim.power)
        else:
            sd_x = float(np.std(xv, ddof=1)) if len(xv) > 1 else pooled_sd
            sd_y = float(np.std(yv, ddof=1)) if len(yv) > 1 else pooled_sd
            needed = stats.seeds_needed(distances, sd_x, sd_y, paired=False, ratio=r,
                                        alpha_level=claim.alpha_level, power=claim.power)
    return Comparison(alpha=alpha, n_group=len(xv), n_baseline=len(yv), paired=paired, mean_group=float(xv.mean()),
                      mean_baseline=float(yv.mean()), difference=float(xv.mean() - yv.mean()), estimate=estimate,
                      ci=ci, effect_size=float(stats.hedges_g(xv, yv)), p_value=float(support.p_value),
                      p_against=float(p_against), verdict=verdict, seeds_needed=needed)


def _alphas_text(alphas) -> str:
    return ", ".join(f"{a:g}" for a in sorted(alphas)) or "none"


def _apply_where(results: pd.DataFrame, claim: Claim) -> tuple[pd.DataFrame, str]:
    frame = results
    for column, wanted in claim.where.items():
        if column not in frame.columns:
            raise ClaimsError(f"{claim.origin}: claim '{claim.id}': 'where' names {column!r}, which is not a column "
                              f"of the results (columns: {', '.join(map(str, results.columns))})")
        options = wanted if isinstance(wanted, list) else [wanted]
        keep = frame[column].astype(str).isin([str(o) for o in options])
        if not keep.any():
            present = ", ".join(sorted(results[column].astype(str).unique()))
            return frame[keep], f"applies where {column} is {' or '.join(map(str, options))}; this sweep has {present}"
        frame = frame[keep]
    return frame, ""


#: Summary columns written by `selectivity robustness` / `selectivity analyze`: a claim on one
#: of them that the results lack is 'not tested' (run the evaluation first), not an error.
EVALUATION_COLUMNS = {"corruption_acc": "robustness", "adv_acc/": "robustness", "clean_acc_eval": "robustness",
                      "pc95": "analyze", "pr/": "analyze", "pr_early": "analyze", "delta_pc95": "analyze",
                      "pwcca": "analyze", "cka": "analyze", "grad_": "analyze"}


def _not_evaluated(results: pd.DataFrame, claim: Claim) -> str:
    """Why the claim cannot be tested yet, when its metric comes from an evaluation not run."""
    if claim.metric in results.columns:
        return ""
    command = next((cmd for prefix, cmd in EVALUATION_COLUMNS.items() if claim.metric.startswith(prefix)), "")
    return f"the results have no {claim.metric} column: run `selectivity {command} DIR` first" if command else ""


def _metric_values(results: pd.DataFrame, claim: Claim) -> pd.Series:
    """The claim's metric column as floats (missing values NaN); an error if absent or not numbers."""
    if claim.metric not in results.columns:
        numeric = [c for c in results.columns
                   if c not in ("alpha", "seed") and pd.api.types.is_numeric_dtype(results[c])]
        raise ClaimsError(f"{claim.origin}: claim '{claim.id}': metric {claim.metric!r} is not a column of the results "
                          f"(numeric columns: {', '.join(numeric)})")
    column = results[claim.metric]
    values = pd.to_numeric(column, errors="coerce").astype(float)
    if (column.notna() & values.isna()).any():
        raise ClaimsError(f"{claim.origin}: claim '{claim.id}': metric {claim.metric!r} is not numeric")
    return values


def evaluate_claim(results: pd.DataFrame, claim: Claim, *, level: float = 0.95, n_boot: int = 10_000,
                   seed: int = 0) -> ClaimResult:
    """Test one claim on a results table (one row per run: alpha, seed, status, metrics).

    Only completed runs with a value of the metric count. Raises :class:`ClaimsError` for a
    metric or ``where`` column the table lacks; alphas the sweep lacks, or a metric of an
    evaluation (robustness, analyze) not yet run, give 'not tested'.
    """
    reason = _not_evaluated(results, claim)
    if reason:
        return ClaimResult(claim, NOT_TESTED, reason)
    results = results.assign(**{claim.metric: _metric_values(results, claim)})
    frame, reason = _apply_where(results, claim)
    if reason:
        return ClaimResult(claim, NOT_TESTED, reason)
    if "status" in frame.columns:
        frame = frame[frame["status"] == "completed"]
    frame = frame.dropna(subset=[claim.metric])
    alphas = set(frame["alpha"].astype(float))
    if not any(_same(claim.baseline, a) for a in alphas):
        return ClaimResult(claim, NOT_TESTED, f"no completed run with {claim.metric} at the baseline alpha = "
                                              f"{claim.baseline:g} (alphas here: {_alphas_text(alphas)})")
    found, missing = claim.group.select(alphas - {a for a in alphas if _same(claim.baseline, a)})
    if missing or not found:
        lacking = f"alpha = {_alphas_text(missing)}" if missing else str(claim.group)
        return ClaimResult(claim, NOT_TESTED, f"no completed run with {claim.metric} at {lacking} "
                                              f"(alphas here: {_alphas_text(alphas)})")
    y = _per_seed(frame, claim.metric, claim.baseline)
    pooled = _pooled_sd(frame, claim.metric)
    comparisons = tuple(_compare(claim, _per_seed(frame, claim.metric, a), y, a, pooled, level, n_boot, seed)
                        for a in found)
    verdicts = [c.verdict for c in comparisons]
    if REFUTED in verdicts:
        verdict = REFUTED
    elif all(v == SUPPORTED for v in verdicts):
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    result = ClaimResult(claim, verdict, "", comparisons)
    if verdict == INCONCLUSIVE and any(min(c.n_group, c.n_baseline) < 2 for c in comparisons):
        if math.isnan(result.seeds_needed):
            reason = ("one seed per alpha and no seed-to-seed spread measured in this sweep: no test can decide, "
                      "and the seeds a decisive answer needs cannot be estimated; run 3 seeds or more")
        else:
            reason = "one seed at an alpha: no test can decide (seeds needed from the spread at the other alphas)"
        result = ClaimResult(claim, verdict, reason, comparisons)
    return result


def evaluate_claims(results: pd.DataFrame, claims: list[Claim], *, level: float = 0.95, n_boot: int = 10_000,
                    seed: int = 0) -> list[ClaimResult]:
    """:func:`evaluate_claim` for each claim, in order."""
    return [evaluate_claim(results, c, level=level, n_boot=n_boot, seed=seed) for c in claims]
