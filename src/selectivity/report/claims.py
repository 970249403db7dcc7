"""Claims: the papers' statements written as hypotheses and tested across seeds, per cell.

A results table is first split into **cells**: one per combination of the columns that name
what was trained on what (``model``, ``dataset``, and any config column such as ``epochs``
that differs between completed runs); alpha and seed never split. Each claim is tested in
every cell its ``where`` selects, and a claim over several cells is supported only when every
cell is. Within a cell a contrast claim compares one metric between a group of runs (an
alpha, or every alpha matching a condition) and the baseline (alpha = 0 by default):

    c = mean over seeds of metric(group) - ratio * mean over seeds of metric(baseline)

with a one-sided t test (or TOST) on c, paired on seeds when both alphas hold the same
seeds, Welch's otherwise. The verdict of a claim in a cell, at level ``alpha_level``:

- supported: every alpha's test of the claim rejects its negation (intersection-union);
- refuted: some alpha's opposite one-sided test rejects the claim after Holm's adjustment
  over the claim's alphas (family-wise error at most alpha_level);
- inconclusive: neither; the report gives the seeds to support and to refute;
- not tested: the cell has no runs for the claim's alphas (or its ``where`` filter).

Trend claims test the sign of a slope (the per-seed slope of the metric on alpha or on
another column such as mean_si); association claims the slope of the metric on a column
across every network of the cell. The schema is documented in ``claims.yaml``.
"""

from __future__ import annotations

import dataclasses

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
    "CellResult",
    "CLAIMS_CSV_COLUMNS",
    "cell_columns",
    "claims_table",
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
    "trend": TestSpec("trend", "direction"),                    # slope of m on `against`, per seed
    "association": TestSpec("trend", "direction"),              # slope across every network
}
_DIRECTIONS = {"increasing": "greater", "decreasing": "less"}

_KEYS = {"id", "statement", "source", "metric", "group", "baseline", "by", "test", "margin", "ratio", "alpha_level",
         "power", "where", "against", "direction"}
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
    every: bool = False

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
        if value == "all":
            return cls(every=True)
        match = _COMPARISON.match(value) if isinstance(value, str) else None
        if match is None:
            raise ClaimsError(f"{where}: expected an alpha value (-1), a list ([1, 2.5]) or a comparison "
                              f"('>= 1', '< 0') or 'all', got {value!r}")
        return cls(op=match.group(1), bound=float(match.group(2)))

    @property
    def single(self) -> float | None:
        return self.values[0] if self.op is None and not self.every and len(self.values) == 1 else None

    def __str__(self) -> str:
        if self.every:
            return "every alpha"
        if self.op is not None:
            return f"alpha {self.op} {self.bound:g}"
        return "alpha = " + ", ".join(f"{v:g}" for v in self.values)

    def select(self, alphas) -> tuple[list[float], list[float]]:
        """(matched alphas of the sweep, listed alphas the sweep lacks)."""
        alphas = sorted(set(float(a) for a in alphas))
        if self.every:
            return alphas, []
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
    against: str = "alpha"
    direction: str | None = None
    by: str = "alpha"  # the column whose values define the group and the baseline
    baseline_rule: AlphaSelector | None = None  # a baseline such as '> 0': the one other value that matches

    @property
    def spec(self) -> TestSpec:
        return TESTS[self.test]

    @property
    def is_trend(self) -> bool:
        """A trend or association claim (a slope), not a contrast with the baseline."""
        return self.spec.side == "trend"

    @property
    def side(self) -> str:
        """'greater', 'less' or 'equivalence': the claim on c, or on the slope for a trend."""
        return _DIRECTIONS[self.direction] if self.is_trend else self.spec.side

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
        if self.is_trend:
            op = ">" if self.side == "greater" else "<"
            how = "per seed, " if self.test == "trend" else "across networks, "
            return f"slope of {self.metric} on {self.against} {op} 0 ({how}{self.group})".replace("-", "−")
        a = "α" if self.group.single is None else f"{self.group.single:g}"
        if self.by != "alpha":
            a = f"{self.by} = {a}"
        rule = self.baseline_rule
        x, y = f"m({a})", (f"m({self.baseline:g})" if rule is None else f"m({self.by} {rule.op} {rule.bound:g})")
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
    if spec.needs == "direction":
        direction = raw.get("direction")
        if direction not in _DIRECTIONS:
            raise ClaimsError(f"{where}: test '{test}' needs 'direction': increasing or decreasing, got {direction!r}")
        against = raw.get("against", "alpha" if test == "trend" else "mean_si")
        if not isinstance(against, str) or not against or against in ("seed", raw["metric"]):
            raise ClaimsError(f"{where}: 'against' must name another column of the results (alpha, mean_si, ...), "
                              f"got {against!r}")
    else:
        for key in ("direction", "against"):
            if key in raw:
                raise ClaimsError(f"{where}: test '{test}' takes no '{key}' (only trend and association do)")
        direction, against = None, "alpha"
    for key in ("margin", "ratio"):
        if raw.get(key) is None:
            values[key] = None
            continue
        number = _number(raw[key])
        if number is None or not number > 0 or not math.isfinite(number):
            raise ClaimsError(f"{where}: '{key}' must be a positive number, got {raw[key]!r}")
        values[key] = number
    if spec.needs in ("margin", "ratio") and values[spec.needs] is None:
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
    by = raw.get("by", "alpha")
    if not isinstance(by, str) or not by or by in ("seed", raw["metric"]):
        raise ClaimsError(f"{where}: 'by' must name a column of the results (alpha, reg_from, ...), got {by!r}")
    if by != "alpha" and spec.side == "trend":
        raise ClaimsError(f"{where}: 'by' is for contrasts; a trend or association names its x axis in 'against'")
    group = AlphaSelector.parse(raw["group"], f"{where}, group")
    baseline = AlphaSelector.parse(raw.get("baseline", defaults.get("baseline", 0.0)), f"{where}, baseline")
    rule = None
    if baseline.single is None:
        if by == "alpha" or baseline.op is None:
            raise ClaimsError(f"{where}: baseline must be one alpha value (e.g. 0), got {raw.get('baseline')!r}")
        rule, baseline = baseline, AlphaSelector(values=(math.nan,))
    filters = raw.get("where") or {}
    if not isinstance(filters, dict) or any(not isinstance(v, (str, int, float, list)) for v in filters.values()):
        raise ClaimsError(f"{where}: 'where' must map results columns to a value or a list of values, got {filters!r}")
    return Claim(id=raw["id"], statement=" ".join(raw["statement"].split()), metric=raw["metric"], group=group,
                 test=test, baseline=baseline.single, margin=values["margin"], ratio=values["ratio"],
                 alpha_level=alpha_level, power=power, where=dict(filters), source=raw.get("source", ""),
                 origin=origin, against=against, direction=direction, by=by, baseline_rule=rule)


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
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ClaimsError(f"claims file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
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

#: Columns that name what was trained on what: a cell is one combination of their values.
CELL_COLUMNS = ("model", "dataset")
#: Config columns that split cells too when they differ between completed runs (plus any
#: column named ``config/<key>``). Environment columns (device, torch, version) never split.
CONFIG_COLUMNS = ("epochs", "optimizer", "lr", "batch_size", "width", "augment", "preset", "schedule")


def cell_columns(results: pd.DataFrame) -> list[str]:
    """The columns that split ``results`` into cells: model and dataset (when present), then
    every config column whose value differs between completed runs."""
    done = results[results["status"] == "completed"] if "status" in results.columns else results
    out = [c for c in CELL_COLUMNS if c in results.columns]
    for column in results.columns:
        if column in CONFIG_COLUMNS or str(column).startswith("config/"):
            if done[column].astype(str).nunique() > 1:
                out.append(column)
    return out


@dataclass(frozen=True)
class Comparison:
    """One test inside a cell: an alpha against the baseline, or a trend's slope.

    ``estimate`` and ``ci`` are on the scale the claim tests: mean(x) - mean(y) in the metric's
    units, mean(x) / mean(y) for ratio claims, the slope for trends (``scale`` says which).
    ``p_value`` is the one-sided p of the claim; ``p_against`` the opposite test's p after Holm
    over the claim's alphas in the cell (``p_against_raw`` before). ``effect_size`` is d_z
    (paired), Hedges' g (unpaired), the ratio (ratio claims) or, for trends, the slopes' d_z
    (per seed) or Pearson's r (across networks); ``effect_name`` says which.
    ``seeds_to_support`` / ``seeds_to_refute``: seeds (per alpha; pairs when paired) at which the
    one-sided test of each side has the claim's power, if the observed effect and spread are
    the truth (refuting at Holm's first step, alpha_level / number of alphas).
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

    @property
    def difference(self) -> float:
        return self.mean_group - self.mean_baseline


def _max_or_nan(values) -> float:
    values = list(values)
    return float("nan") if not values or any(math.isnan(v) for v in values) else max(values)


@dataclass(frozen=True)
class CellResult:
    """A claim's verdict in one cell (one model on one dataset, ...), with its comparisons."""

    cell: tuple[tuple[str, str], ...]
    verdict: str
    reason: str = ""
    comparisons: tuple[Comparison, ...] = ()

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
    _, code, _ = stats.family_verdict([p_support], [p_against], alpha_level)
    return _CODES[int(code)]


def _per_seed(frame: pd.DataFrame, metric: str, alpha: float) -> pd.Series:
    """Metric per seed at one alpha (a seed run twice counts once, at its mean)."""
    rows = frame[_same(frame["alpha"].to_numpy(dtype=float), alpha)]
    return rows.groupby("seed")[metric].mean().sort_index()


def _pooled_sd(frame: pd.DataFrame, metric: str) -> float:
    """Within-alpha seed-to-seed sd of one cell, pooled over its alphas with two seeds or more."""
    groups = [g.groupby("seed")[metric].mean() for _, g in frame.groupby("alpha")]
    dfs = np.array([len(g) - 1 for g in groups if len(g) > 1], dtype=float)
    if dfs.sum() == 0:
        return float("nan")
    ss = sum(float(((g - g.mean()) ** 2).sum()) for g in groups if len(g) > 1)
    return math.sqrt(ss / dfs.sum())


def _distances(claim: Claim, c: float) -> tuple[list[float], list[float]]:
    """How far the contrast c lies past each boundary (support, refute): positive = on the side
    a decisive test needs; the test has power when every distance is positive and large."""
    if claim.side == "equivalence":
        m = claim.margin
        return [m - c, c + m], [abs(c) - m]
    sign = 1.0 if claim.side == "greater" else -1.0
    gap = sign * (c - claim.null)
    return [gap], [-gap]


def _seeds(claim: Claim, distances, paired: bool, sd_x: float, sd_y: float, level: float) -> float:
    return stats.seeds_needed(distances, sd_x, sd_y, paired=paired, ratio=claim.contrast_ratio,
                              alpha_level=level, power=claim.power)


def _test_pair(claim: Claim, xv: np.ndarray, yv: np.ndarray, paired: bool):
    """(support TestResult, raw p against) of one alpha."""
    r, side = claim.contrast_ratio, claim.side
    if side == "equivalence":
        support = stats.equivalence_test(xv, yv, claim.margin, ratio=r, paired=paired)
        upper = stats.contrast_test(xv, yv, alternative="greater", null=claim.margin, ratio=r, paired=paired)
        lower = stats.contrast_test(xv, yv, alternative="less", null=-claim.margin, ratio=r, paired=paired)
        return support, float(np.fmin(upper.p_value, lower.p_value))
    opposite = "less" if side == "greater" else "greater"
    support = stats.contrast_test(xv, yv, alternative=side, null=claim.null, ratio=r, paired=paired)
    against = stats.contrast_test(xv, yv, alternative=opposite, null=claim.null, ratio=r, paired=paired)
    return support, float(against.p_value)


def _interval(claim: Claim, xv, yv, paired: bool, level: float, interval: str, n_boot: int, seed: int):
    """(estimate, (low, high), interval name) on the claim's scale."""
    ratio_test = claim.ratio is not None
    if interval == "bootstrap" and min(len(xv), len(yv)) >= BOOTSTRAP_MIN_SEEDS:
        estimate = float(xv.mean() / yv.mean()) if ratio_test else float(xv.mean() - yv.mean())
        ci = stats.bootstrap_ci(xv, yv, statistic="ratio" if ratio_test else "difference", paired=paired,
                                level=level, n_boot=n_boot, seed=seed)
        return estimate, ci, "percentile bootstrap"
    if ratio_test:
        estimate, low, high = stats.fieller_ci(xv, yv, paired=paired, level=level)
        return float(estimate), (float(low), float(high)), "Fieller" + (" (paired)" if paired else " (Welch)")
    estimate, low, high = stats.contrast_ci(xv, yv, paired=paired, level=level)
    return float(estimate), (float(low), float(high)), "paired t" if paired else "Welch t"


#: The percentile bootstrap is offered only from this many seeds per group (below, its
#: coverage falls well short: 3 paired seeds give their min-max range, ~75%).
BOOTSTRAP_MIN_SEEDS = 20


def _compare_alphas(claim: Claim, frame: pd.DataFrame, found: list[float], level: float, interval: str,
                    n_boot: int, seed: int) -> tuple[tuple[Comparison, ...], str]:
    """The comparisons of a contrast claim in one cell, Holm over its alphas; and the cell verdict."""
    y = _per_seed(frame, claim.metric, claim.baseline)
    pooled = _pooled_sd(frame, claim.metric)
    rows = []
    for alpha in found:
        x = _per_seed(frame, claim.metric, alpha)
        paired = len(x) > 1 and list(x.index) == list(y.index)
        xv, yv = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
        support, p_against = _test_pair(claim, xv, yv, paired)
        estimate, ci, name = _interval(claim, xv, yv, paired, level, interval, n_boot, seed)
        if claim.ratio is not None:
            effect, effect_name = estimate, "ratio"
        else:
            effect, effect_name = stats.effect_size(xv, yv, paired=paired) if len(xv) > 1 and len(yv) > 1 \
                else (float("nan"), "d_z" if paired else "g")
        c = float(xv.mean() - claim.contrast_ratio * yv.mean())
        if paired:
            sd_x = sd_y = float(np.std(xv - claim.contrast_ratio * yv, ddof=1))
        else:
            sd_x = float(np.std(xv, ddof=1)) if len(xv) > 1 else pooled
            sd_y = float(np.std(yv, ddof=1)) if len(yv) > 1 else pooled
        to_support, to_refute = _distances(claim, c)
        rows.append(dict(alpha=alpha, n_group=len(xv), n_baseline=len(yv), paired=paired,
                         mean_group=float(xv.mean()), mean_baseline=float(yv.mean()), estimate=estimate, ci=ci,
                         effect_size=float(effect), effect_name=effect_name, p_value=float(support.p_value),
                         p_against_raw=p_against, scale="ratio" if claim.ratio is not None else "difference",
                         interval=name, label=f"{claim.by} = {alpha:g} vs {claim.baseline:g}",
                         seeds_to_support=_seeds(claim, to_support, paired, sd_x, sd_y, claim.alpha_level),
                         seeds_to_refute=_seeds(claim, to_refute, paired, sd_x, sd_y,
                                                claim.alpha_level / len(found))))
    per_alpha, code, adjusted = stats.family_verdict([r["p_value"] for r in rows], [r["p_against_raw"] for r in rows],
                                                     claim.alpha_level)
    comparisons = tuple(Comparison(**r, p_against=float(a), verdict=_CODES[int(v)])
                        for r, a, v in zip(rows, adjusted, per_alpha, strict=True))
    return comparisons, _CODES[int(code)]


def _compare_trend(claim: Claim, frame: pd.DataFrame, found: list[float], level: float) -> tuple[Comparison, str]:
    """A trend (per-seed slopes) or association (every network) claim in one cell."""
    frame = frame[np.isin(frame["alpha"].to_numpy(dtype=float), found)]
    frame = frame.dropna(subset=[claim.against]) if claim.against != "alpha" else frame
    networks = frame.groupby(["alpha", "seed"])[[claim.metric, claim.against]].mean().reset_index() \
        if claim.against != "alpha" else frame.groupby(["alpha", "seed"])[[claim.metric]].mean().reset_index()
    t_col = claim.against
    per_seed = False
    if claim.test == "trend":
        wide_v = networks.pivot(index="seed", columns="alpha", values=claim.metric).dropna()
        wide_t = networks.pivot(index="seed", columns="alpha", values=t_col).loc[wide_v.index] if t_col != "alpha" \
            else pd.DataFrame([wide_v.columns.to_numpy(dtype=float)] * len(wide_v), index=wide_v.index)
        per_seed = len(wide_v) >= 2 and wide_v.shape[1] >= 2
    if per_seed:
        t, v = wide_t.to_numpy(dtype=float), wide_v.to_numpy(dtype=float)
        result = stats.slope_test(t, v, per_seed=True, level=level)
        n, k = t.shape
        sd_unit = float(result.se) * math.sqrt(n)
        df_of_n = lambda m: m - 1.0  # noqa: E731
        name, effect_name, paired = "t of per-seed slopes", "d_z", True
    else:
        t, v = networks[t_col].to_numpy(dtype=float), networks[claim.metric].to_numpy(dtype=float)
        result = stats.slope_test(t, v, per_seed=False, level=level)
        n = networks["seed"].nunique()
        k = len(networks) / max(n, 1)
        sd_unit = float(result.se) * math.sqrt(n)  # se shrinks as 1/sqrt(seeds) at a fixed set of alphas
        df_of_n = lambda m: m * k - 2.0  # noqa: E731
        name, effect_name, paired = "OLS slope t (networks)", "r", False
    greater = claim.side == "greater"
    p_support = float(result.p_greater if greater else result.p_less)
    p_against = float(result.p_less if greater else result.p_greater)
    gap = float(result.estimate) * (1 if greater else -1)
    code = _CODES[int(stats.family_verdict([p_support], [p_against], claim.alpha_level)[1])]
    seeds = {side: stats.slope_seeds_needed(d, sd_unit, df_of_n=df_of_n, alpha_level=claim.alpha_level,
                                            power=claim.power) for side, d in (("support", gap), ("refute", -gap))}
    label = f"slope on {claim.against}, {_alphas_text(found)}" + (" (per seed)" if per_seed else " (networks)")
    comparison = Comparison(alpha=float("nan"), n_group=int(len(v) if per_seed else len(networks)), n_baseline=0,
                            paired=paired, mean_group=float(np.mean(v)), mean_baseline=float("nan"),
                            estimate=float(result.estimate), ci=(float(result.low), float(result.high)),
                            effect_size=float(result.r), effect_name=effect_name, p_value=p_support,
                            p_against=p_against, p_against_raw=p_against, verdict=code,
                            seeds_to_support=seeds["support"], seeds_to_refute=seeds["refute"], scale="slope",
                            interval=name, label=label)
    return comparison, code


def _alphas_text(alphas) -> str:
    return ", ".join(f"{a:g}" for a in sorted(alphas)) or "none"


def _apply_where(results: pd.DataFrame, claim: Claim) -> tuple[pd.DataFrame, str, list[str]]:
    """(rows the claim's ``where`` selects, why none, listed values with no run)."""
    frame, absent = results, []
    for column, wanted in claim.where.items():
        if column not in frame.columns:
            raise ClaimsError(f"{claim.origin}: claim '{claim.id}': 'where' names {column!r}, which is not a column "
                              f"of the results (columns: {', '.join(map(str, results.columns))})")
        options = wanted if isinstance(wanted, list) else [wanted]
        values = frame[column].astype(str)
        absent += [f"{column}={o}" for o in options if not (values == str(o)).any()]
        keep = values.isin([str(o) for o in options])
        if not keep.any():
            present = ", ".join(sorted(results[column].astype(str).unique()))
            why = f"applies where {column} is {' or '.join(map(str, options))}; this sweep has {present}"
            return frame[keep], why, []
        frame = frame[keep]
    return frame, "", absent


#: Summary columns written by `selectivity robustness` / `selectivity analyze`: a claim on one
#: of them that the results lack is 'not tested' (run the evaluation first), not an error.
EVALUATION_COLUMNS = {"corruption_acc": "robustness", "adv_acc/": "robustness", "clean_acc_eval": "robustness",
                      "pc95": "analyze", "pr/": "analyze", "pr_early": "analyze", "delta_pc95": "analyze",
                      "pwcca": "analyze", "cka": "analyze", "grad_": "analyze"}


def _not_evaluated(results: pd.DataFrame, claim: Claim) -> str:
    """Why the claim cannot be tested yet, when a column comes from an evaluation not run."""
    for column in (claim.metric, claim.against):
        if column == "alpha" or column in results.columns:
            continue
        prefix, command = next(((pre, cmd) for pre, cmd in EVALUATION_COLUMNS.items() if column.startswith(pre)),
                               ("", ""))
        if command and column.startswith("adv_acc/") and any(str(c).startswith("adv_acc/") for c in results.columns):
            attack, eps = column.split("/", 2)[1:]
            ran = sorted(str(c)[len("adv_acc/"):] for c in results.columns if str(c).startswith("adv_acc/"))
            return (f"`selectivity robustness` ran without {attack} at epsilon {eps} (it has {', '.join(ran)}): run "
                    f"`selectivity robustness DIR --attacks {attack} --eps {eps}`")
        if command and any(str(c).startswith(prefix) for c in results.columns):
            return f"`selectivity {command}` ran, but the results have no {column} column"
        if command:
            return f"the results have no {column} column: run `selectivity {command} DIR` first"
    return ""


def _metric_values(results: pd.DataFrame, claim: Claim, metric: str) -> pd.Series:
    """A column the claim tests, as floats (missing values NaN); an error if absent or not numbers."""
    if metric not in results.columns:
        numeric = [c for c in results.columns
                   if c not in ("alpha", "seed") and pd.api.types.is_numeric_dtype(results[c])]
        raise ClaimsError(f"{claim.origin}: claim '{claim.id}': metric {metric!r} is not a column of the results "
                          f"(numeric columns: {', '.join(numeric)})")
    column = results[metric]
    values = pd.to_numeric(column, errors="coerce").astype(float)
    if (column.notna() & values.isna()).any():
        raise ClaimsError(f"{claim.origin}: claim '{claim.id}': metric {metric!r} is not numeric")
    return values


def _evaluate_cell(claim: Claim, key: tuple, frame: pd.DataFrame, level: float, interval: str, n_boot: int,
                   seed: int) -> CellResult:
    subset = [claim.metric] + ([claim.against] if claim.is_trend and claim.against != "alpha" else [])
    frame = frame.dropna(subset=subset)
    alphas = set(frame["alpha"].astype(float))
    if claim.is_trend:
        found, missing = claim.group.select(alphas)
        if missing or len(found) < 2:
            lacking = f"alpha = {_alphas_text(missing)}" if missing else f"two alphas of {claim.group}"
            return CellResult(key, NOT_TESTED, f"no completed run with {', '.join(subset)} at {lacking} "
                                               f"(alphas here: {_alphas_text(alphas)})")
        comparison, verdict = _compare_trend(claim, frame, found, level)
        reason = "" if not math.isnan(comparison.p_value) else "too few seeds or points (or no spread) for a slope test"
        return CellResult(key, verdict, reason, (comparison,))
    if claim.baseline_rule is not None:  # e.g. '> 0': exactly one other value of `by` must match
        matched = [a for a in claim.baseline_rule.select(alphas)[0] if a not in claim.group.select(alphas)[0]]
        if len(matched) != 1:
            return CellResult(key, NOT_TESTED, f"the baseline {claim.baseline_rule} must match one {claim.by} value "
                                               f"of this cell, it matches {_alphas_text(matched)}")
        claim = dataclasses.replace(claim, baseline=matched[0])
    if not any(_same(claim.baseline, a) for a in alphas):
        return CellResult(key, NOT_TESTED, f"no completed run with {claim.metric} at the baseline {claim.by} = "
                                           f"{claim.baseline:g} (alphas here: {_alphas_text(alphas)})")
    found, missing = claim.group.select(alphas - {a for a in alphas if _same(claim.baseline, a)})
    if missing or not found:
        lacking = f"alpha = {_alphas_text(missing)}" if missing else str(claim.group)
        return CellResult(key, NOT_TESTED, f"no completed run with {claim.metric} at {lacking} "
                                           f"(alphas here: {_alphas_text(alphas)})")
    comparisons, verdict = _compare_alphas(claim, frame, found, level, interval, n_boot, seed)
    reason = ""
    if verdict == INCONCLUSIVE and any(min(c.n_group, c.n_baseline) < 2 for c in comparisons):
        if all(math.isnan(c.seeds_to_support) for c in comparisons):
            reason = ("one seed per alpha and no seed-to-seed spread measured in this cell: no test can decide, "
                      "and the seeds a decisive answer needs cannot be estimated; run 3 seeds or more")
        else:
            reason = "one seed at an alpha: no test can decide (seeds needed from the spread at the other alphas)"
    return CellResult(key, verdict, reason, comparisons)


def _overall(claim: Claim, cells: list[CellResult], absent: list[str]) -> tuple[str, str]:
    """A claim over its cells: supported when every cell is (and no `where` value is absent);
    refuted when Holm over every (cell, alpha) refuting test rejects; else inconclusive."""
    tested = [c for c in cells if c.verdict != NOT_TESTED]
    if not tested:
        return NOT_TESTED, "; ".join(f"{c.label}: {c.reason}" if len(cells) > 1 else c.reason for c in cells)
    raw = [comp.p_against_raw for c in tested for comp in c.comparisons]
    if all(c.verdict == SUPPORTED for c in tested):
        verdict = SUPPORTED  # intersection-union over cells and alphas
    elif (stats.holm(raw) < claim.alpha_level).any():
        verdict = REFUTED  # Holm over every (cell, alpha) refuting test
    else:
        verdict = INCONCLUSIVE
    notes = [cells[0].reason] if len(cells) == 1 and cells[0].reason else []
    if verdict == SUPPORTED and (len(tested) < len(cells) or absent):
        verdict = INCONCLUSIVE
    if len(tested) < len(cells):
        notes.append("not tested in " + "; ".join(c.label for c in cells if c.verdict == NOT_TESTED))
    if absent:
        notes.append("no runs for " + ", ".join(absent))
    if len(cells) > 1 and verdict == INCONCLUSIVE and any(c.verdict == REFUTED for c in tested):
        notes.append("refuted in a cell, but not after Holm over every cell's alphas")
    return verdict, "; ".join(notes)


def evaluate_claim(results: pd.DataFrame, claim: Claim, *, level: float = 0.95, n_boot: int = 10_000,
                   seed: int = 0, interval: str = "t") -> ClaimResult:
    """Test one claim on a results table (one row per run: alpha, seed, status, metrics), per cell.

    Only completed runs with a value of the metric count. Raises :class:`ClaimsError` for a
    metric or ``where`` column the table lacks; alphas a cell lacks, or a metric of an
    evaluation (robustness, analyze) not yet run, give 'not tested'. ``interval``: 't' (t,
    Welch or Fieller intervals) or 'bootstrap' (percentile, only where every group has
    BOOTSTRAP_MIN_SEEDS seeds or more; t elsewhere).
    """
    if interval not in ("t", "bootstrap"):
        raise ValueError(f"interval must be 't' or 'bootstrap', got {interval!r}")
    reason = _not_evaluated(results, claim)
    if reason:
        return ClaimResult(claim, NOT_TESTED, reason)
    columns = [claim.metric] + ([claim.against] if claim.is_trend and claim.against != "alpha" else [])
    results = results.assign(**{c: _metric_values(results, claim, c) for c in columns})
    if claim.by != "alpha" and claim.by not in results.columns:
        return ClaimResult(claim, NOT_TESTED, f"the results have no {claim.by} column (runs trained by an older "
                                              "version, or not with this kind of condition)")
    if claim.by != "alpha":  # groups by another config value: it plays alpha's part below
        by = _metric_values(results, claim, claim.by)
        results = results.assign(alpha=by)[by.notna()]
    keys = cell_columns(results)
    if claim.by != "alpha":  # the compared condition (and the schedule that sets it) must not split cells
        keys = [k for k in keys if k not in (claim.by, "schedule")]
    frame, reason, absent = _apply_where(results, claim)
    if reason:
        return ClaimResult(claim, NOT_TESTED, reason)
    if "status" in frame.columns:
        frame = frame[frame["status"] == "completed"]
    if frame.empty:
        return ClaimResult(claim, NOT_TESTED, "no completed run")
    why = f"{claim.metric}_reason"  # an evaluation that left the column empty says why (corruption_acc)
    if frame[claim.metric].isna().all() and why in frame.columns and frame[why].notna().any():
        return ClaimResult(claim, NOT_TESTED, f"no {claim.metric}: {frame[why].dropna().iloc[0]}")
    if keys:
        groups = [(tuple(zip(keys, map(str, k if isinstance(k, tuple) else (k,)), strict=True)), g)
                  for k, g in frame.groupby(keys if len(keys) > 1 else keys[0], dropna=False, sort=True)]
    else:
        groups = [((), frame)]
    cells = [_evaluate_cell(claim, key, g, level, interval, n_boot, seed) for key, g in groups]
    verdict, reason = _overall(claim, cells, absent)
    return ClaimResult(claim, verdict, reason, tuple(cells))


def evaluate_claims(results: pd.DataFrame, claims: list[Claim], *, level: float = 0.95, n_boot: int = 10_000,
                    seed: int = 0, interval: str = "t") -> list[ClaimResult]:
    """:func:`evaluate_claim` for each claim, in order."""
    return [evaluate_claim(results, c, level=level, n_boot=n_boot, seed=seed, interval=interval) for c in claims]


# --------------------------------------------------------------------------- verdict table

#: The columns of ``claims.csv``, in order; cell columns other than model and dataset follow
#: ``dataset``.
CLAIMS_CSV_COLUMNS = ["claim", "model", "dataset", "alpha", "comparison", "metric", "test", "scale", "n_group",
                      "n_baseline", "paired", "estimate", "ci_low", "ci_high", "interval", "effect_size",
                      "effect_name", "p_support", "p_against", "p_against_raw", "alpha_verdict", "verdict",
                      "claim_verdict", "seeds_to_support", "seeds_to_refute", "cell_seeds_to_support",
                      "cell_seeds_to_refute", "level", "reason"]


def claims_table(results: list[ClaimResult], level: float = 0.95) -> pd.DataFrame:
    """One row per (claim, cell, alpha) (one per cell for trends; one per claim when not tested).

    ``p_against`` is Holm-adjusted over the claim's alphas in the cell (the p the decision
    uses); ``verdict`` the claim's verdict in the cell, ``claim_verdict`` over all cells.
    """
    rows, extra = [], []
    for r in results:
        c = r.claim
        base = {"claim": c.id, "metric": c.metric, "test": c.test, "claim_verdict": r.verdict, "level": level}
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
                             "estimate": comp.estimate, "ci_low": comp.ci[0], "ci_high": comp.ci[1],
                             "interval": comp.interval, "effect_size": comp.effect_size,
                             "effect_name": comp.effect_name, "p_support": comp.p_value,
                             "p_against": comp.p_against, "p_against_raw": comp.p_against_raw,
                             "alpha_verdict": comp.verdict, "seeds_to_support": comp.seeds_to_support,
                             "seeds_to_refute": comp.seeds_to_refute})
    columns = CLAIMS_CSV_COLUMNS[:3] + extra + CLAIMS_CSV_COLUMNS[3:]
    frame = pd.DataFrame(rows).reindex(columns=columns)
    # Counts as integers and the design as a boolean, empty where a cell was not tested.
    return frame.astype({"n_group": "Int64", "n_baseline": "Int64", "paired": "boolean"})
