"""Claims: the papers' statements written as hypotheses and tested across seeds, per cell.

A results table is first split into **cells** (:mod:`.cells`): one per combination of
``model``, ``dataset`` and every training setting of the runs' config.yaml that differs
between completed runs; alpha, seed, paths and the device never split. Each claim is tested
in every cell its ``where`` selects, and a claim over several cells is supported only when
every cell is. Within a cell a contrast claim compares one metric between a group of runs (an
alpha, or every alpha matching a condition) and the baseline (alpha = 0 by default):

    c = mean over seeds of metric(group) - ratio * mean over seeds of metric(baseline)

with a one-sided t test (or TOST) on c, paired on seeds when both alphas hold the same
seeds, Welch's otherwise. The verdict of a claim in a cell, at level ``alpha_level``:

- supported: every alpha's test of the claim rejects its negation (intersection-union);
- refuted: some alpha's opposite one-sided test rejects the claim after Holm's adjustment
  over the claim's alphas (family-wise error at most alpha_level);
- inconclusive: neither (the report gives the seeds to support and to refute), or planned
  runs of the cell gave no value and the claim does not say how they score (``failed:``);
- not tested: the cell has no runs for the claim's alphas (or its ``where`` filter), or its
  values have no spread and no known resolution.

Each alpha's own verdict is Holm-adjusted on both sides. Trend and association claims test
the sign of a slope of the metric on alpha or on another column such as mean_si, fitted
within each seed (the networks of one seed are one cluster) and tested over the seeds. The
schema is documented in ``claims.yaml``; the methods and what they guarantee in
docs/claims.md.
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
from .cells import SCHEDULE_COLUMNS, assign_cells, cell_columns

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
         "power", "where", "against", "direction", "failed"}
_DEFAULT_KEYS = {"alpha_level", "power", "baseline", "failed"}
#: How a claim may score its planned runs that gave no value (diverged, failed, unfinished):
#: a number in the metric's units, chance (1 / num_classes) or exclude (the claim is about the
#: runs that finish). Without it such runs keep the claim from being supported or refuted.
FAILED_RULES = ("chance", "exclude")
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
    failed: float | str | None = None  # how runs without a value score: a number, 'chance' or 'exclude'

    @property
    def failed_text(self) -> str:
        """The claim's rule for runs without a value, as the report prints it ('' when none)."""
        if self.failed is None:
            return ""
        if self.failed == "exclude":
            return "failed: exclude (the claim is about the runs that finish)"
        if self.failed == "chance":
            return "failed: chance (a run without a value scores 1 / number of classes)"
        return f"failed: {self.failed:g} (a run without a value scores {self.failed:g})"

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
    failed = settings_failed = raw.get("failed", defaults.get("failed"))
    if failed is not None and failed not in FAILED_RULES:
        number = _number(failed)
        if number is None or not math.isfinite(number):
            raise ClaimsError(f"{where}: 'failed' must be a number (the value a run without one scores, in the "
                              f"metric's units), chance or exclude, got {settings_failed!r}")
        failed = number
    filters = raw.get("where") or {}
    if not isinstance(filters, dict) or any(not isinstance(v, (str, int, float, list)) for v in filters.values()):
        raise ClaimsError(f"{where}: 'where' must map results columns to a value or a list of values, got {filters!r}")
    return Claim(id=raw["id"], statement=" ".join(raw["statement"].split()), metric=raw["metric"], group=group,
                 test=test, baseline=baseline.single, margin=values["margin"], ratio=values["ratio"],
                 alpha_level=alpha_level, power=power, where=dict(filters), source=raw.get("source", ""),
                 origin=origin, against=against, direction=direction, by=by, baseline_rule=rule, failed=failed)


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


# --------------------------------------------------------------------------- the runs of a cell


def _usable(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Completed runs with a finite value in every column."""
    if "status" in frame.columns:
        ok = (frame["status"] == "completed").to_numpy(copy=True)
    else:
        ok = np.ones(len(frame), bool)
    for column in columns:
        ok &= np.isfinite(frame[column].to_numpy(dtype=float))
    return ok


def _why(rows: pd.DataFrame, columns: list[str]) -> str:
    """Why a planned run gave no value: its status, else the metric that is infinite or empty."""
    if "status" in rows.columns and (rows["status"] != "completed").all():
        return str(rows["status"].iloc[0])
    for column in columns:
        values = rows[column].to_numpy(dtype=float)
        if np.isinf(values).any():
            return f"{column} = {'inf' if values[np.isinf(values)][0] > 0 else '-inf'}"
        if np.isnan(values).all():
            return f"no {column}"
    return "no value"


@dataclass
class _Runs:
    """One alpha's runs in a cell: values per seed (completed, finite), and the planned seeds
    without a value with why."""

    values: pd.DataFrame  # index: seed; columns: the metric (and the trend's x)
    missing: list[tuple[object, str]]


class _CellRuns:
    """The runs of one cell as arrays, for the values per seed at each alpha (a seed run twice
    counts once, at its mean) and the planned seeds without a value."""

    def __init__(self, frame: pd.DataFrame, columns: list[str]):
        self.frame, self.columns = frame, columns
        self.alpha = frame["alpha"].to_numpy(dtype=float)
        self.seed = frame["seed"].to_numpy()
        self.ok = _usable(frame, columns)
        self.values = {c: frame[c].to_numpy(dtype=float) for c in columns}

    def at(self, alpha: float) -> _Runs:
        rows = np.flatnonzero(_same(self.alpha, alpha))
        good = rows[self.ok[rows]]
        seeds, inverse = np.unique(self.seed[good], return_inverse=True)
        counts = np.bincount(inverse, minlength=len(seeds))
        data = {c: np.bincount(inverse, weights=self.values[c][good], minlength=len(seeds)) / counts
                for c in self.columns}
        values = pd.DataFrame(data, index=pd.Index(seeds, name="seed"))
        missing: list = []
        for i in rows[~self.ok[rows]]:
            seed = self.seed[i]
            if seed in set(seeds) or any(seed == m for m, _ in missing):
                continue
            missing.append((seed, _why(self.frame.iloc[[i]], self.columns)))
        return _Runs(values, missing)

    def pooled_sd(self) -> float:
        """Within-alpha seed-to-seed sd of the cell, pooled over its alphas with two seeds or more."""
        groups = [self.at(a).values[self.columns[0]] for a in np.unique(self.alpha[self.ok])]
        dfs = sum(len(g) - 1 for g in groups if len(g) > 1)
        if dfs == 0:
            return float("nan")
        return math.sqrt(sum(float(((g - g.mean()) ** 2).sum()) for g in groups if len(g) > 1) / dfs)


def _seed_text(seed) -> str:
    try:
        return f"{int(seed)}"
    except (TypeError, ValueError):
        return "?"


def _missing_text(by: str, missing: dict[float, list]) -> str:
    """'alpha = -5: seeds 3, 4 diverged; alpha = 0: seed 2 unfinished'."""
    parts = []
    for alpha in sorted(missing):
        whys: dict[str, list] = {}
        for seed, why in missing[alpha]:
            whys.setdefault(why, []).append(_seed_text(seed))
        runs = ", ".join(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)} {why}" for why, seeds in whys.items())
        parts.append(f"{by} = {alpha:g}: {runs}")
    return "; ".join(parts)


def _failure_value(claim: Claim, frame: pd.DataFrame) -> tuple[float | None, str]:
    """(the value a run without one scores, or None; why the rule cannot apply here)."""
    if claim.failed is None or claim.failed == "exclude":
        return None, ""
    if claim.failed == "chance":
        counts = frame["num_classes"].dropna().unique() if "num_classes" in frame.columns else []
        if len(counts) != 1:
            return None, ("failed: chance needs the number of classes, which these runs do not record "
                          "(no num_classes column): give the value, e.g. failed: 0.1 for 10 classes")
        return 1.0 / float(counts[0]), ""
    return float(claim.failed), ""


def metric_resolution(frame: pd.DataFrame, metric: str) -> float | None:
    """The step of a metric's values, when the runs record it: 1 / n_test for test_acc, 1 / n
    for robustness accuracies (``robustness_n``), 1 / (n x corruptions averaged) for
    corruption_acc. None when unknown (or not one value over the cell)."""
    from ..analysis.corruptions import CORRUPTIONS  # the benchmark's 15: a constant
    from ..runs.summary import SEVERITIES

    if metric == "test_acc":
        column, per = "n_test", 1
    elif metric == "clean_acc_eval" or metric.startswith("adv_acc/"):
        column, per = "robustness_n", 1
    elif metric == "corruption_acc":
        column, per = "robustness_n", len(CORRUPTIONS) * len(SEVERITIES)
    elif re.fullmatch(r"corruption_acc/s\d+", metric):
        column, per = "robustness_n", len(CORRUPTIONS)
    else:
        return None
    if column not in frame.columns:
        return None
    counts = pd.to_numeric(frame[column], errors="coerce").dropna().unique()
    return 1.0 / (float(counts[0]) * per) if len(counts) == 1 and counts[0] > 0 else None


# --------------------------------------------------------------------------- tests in a cell


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


def _test_pair(claim: Claim, xv: np.ndarray, yv: np.ndarray, paired: bool, resolution: float | None):
    """(support TestResult, raw p against) of one alpha."""
    r, side = claim.contrast_ratio, claim.side
    if side == "equivalence":
        support = stats.equivalence_test(xv, yv, claim.margin, ratio=r, paired=paired, resolution=resolution)
        against = stats.nonequivalence_test(xv, yv, claim.margin, ratio=r, paired=paired, resolution=resolution)
        return support, float(against.p_value)
    opposite = "less" if side == "greater" else "greater"
    support = stats.contrast_test(xv, yv, alternative=side, null=claim.null, ratio=r, paired=paired,
                                  resolution=resolution)
    against = stats.contrast_test(xv, yv, alternative=opposite, null=claim.null, ratio=r, paired=paired,
                                  resolution=resolution)
    return support, float(against.p_value)


def _interval(claim: Claim, xv, yv, paired: bool, level: float, interval: str, n_boot: int, seed: int,
              resolution: float | None):
    """(estimate, (low, high), interval name) on the claim's scale."""
    ratio_test = claim.ratio is not None
    if interval == "bootstrap" and min(len(xv), len(yv)) >= BOOTSTRAP_MIN_SEEDS:
        estimate = float(xv.mean() / yv.mean()) if ratio_test else float(xv.mean() - yv.mean())
        ci = stats.bootstrap_ci(xv, yv, statistic="ratio" if ratio_test else "difference", paired=paired,
                                level=level, n_boot=n_boot, seed=seed)
        return estimate, ci, "percentile bootstrap"
    floor = f" (se floored at half of the step {resolution:g})" if resolution else ""
    if ratio_test:
        estimate, low, high = stats.fieller_ci(xv, yv, paired=paired, level=level, resolution=resolution)
        return float(estimate), (float(low), float(high)), "Fieller" + (" (paired)" if paired else " (Welch)") + floor
    estimate, low, high = stats.contrast_ci(xv, yv, paired=paired, level=level, resolution=resolution)
    return float(estimate), (float(low), float(high)), ("paired t" if paired else "Welch t") + floor


#: The percentile bootstrap is offered only from this many seeds per group (below, its
#: coverage falls well short: 3 paired seeds give their min-max range, ~75%).
BOOTSTRAP_MIN_SEEDS = 20


@dataclass
class _Outcome:
    """What the tests of a cell found besides the verdict: runs without a value, no spread."""

    missing: dict = field(default_factory=dict)  # alpha -> [(seed, why)] of runs not scored by the claim
    scored: dict = field(default_factory=dict)  # alpha -> [(seed, why)] scored or excluded by the claim's rule
    no_spread: list = field(default_factory=list)  # labels of comparisons whose values show no spread
    unscorable: str = ""  # why the claim's rule cannot score the missing runs


def _with_failures(runs: _Runs, value: float | None, column: str) -> pd.Series:
    """The per-seed values, with the claim's score for each planned seed without one."""
    series = runs.values[column]
    if value is None or not runs.missing:
        return series
    extra = pd.Series(value, index=[seed for seed, _ in runs.missing], dtype=float)
    return pd.concat([series, extra]).sort_index()


def _no_spread(xv: np.ndarray, yv: np.ndarray, paired: bool) -> bool:
    """Values without seed-to-seed spread (within float rounding of the values)."""
    parts = [xv - yv] if paired else [xv, yv]
    return all(np.ptp(p) <= 1e-12 * max(np.abs(p).max(), 1e-300) for p in parts)


def _compare_alphas(claim: Claim, frame: pd.DataFrame, found: list[float], level: float, interval: str,
                    n_boot: int, seed: int, fail: float | None, resolution: float | None):
    """The comparisons of a contrast claim in one cell, Holm over its alphas; the cell verdict; the outcome."""
    outcome = _Outcome()
    cell = _CellRuns(frame, [claim.metric])
    base = cell.at(claim.baseline)
    y = _with_failures(base, fail, claim.metric)
    rows = []
    for alpha in found:
        runs = cell.at(alpha)
        x = _with_failures(runs, fail, claim.metric)
        paired = len(x) > 1 and list(x.index) == list(y.index)
        xv, yv = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
        support, p_against = _test_pair(claim, xv, yv, paired, resolution)
        label = f"{claim.by} = {alpha:g} vs {claim.baseline:g}"
        if min(len(xv), len(yv)) > 1 and support.se == 0:
            outcome.no_spread.append(label)
        estimate, ci, name = _interval(claim, xv, yv, paired, level, interval, n_boot, seed, resolution)
        if claim.ratio is not None:
            effect, effect_name = estimate, "ratio"
        elif len(xv) > 1 and len(yv) > 1 and not _no_spread(xv, yv, paired):
            effect, effect_name = stats.effect_size(xv, yv, paired=paired)
        else:  # one seed, or no spread: a standardized effect is undefined (not infinite)
            effect, effect_name = float("nan"), "d_z" if paired else "g"
        c = float(xv.mean() - claim.contrast_ratio * yv.mean())
        if paired:
            sd_x = sd_y = float(np.std(xv - claim.contrast_ratio * yv, ddof=1))
        else:
            sd_x = float(np.std(xv, ddof=1)) if len(xv) > 1 else cell.pooled_sd()
            sd_y = float(np.std(yv, ddof=1)) if len(yv) > 1 else cell.pooled_sd()
        missing = {a: r.missing for a, r in ((alpha, runs), (claim.baseline, base)) if r.missing}
        (outcome.missing if fail is None and claim.failed != "exclude" else outcome.scored).update(missing)
        to_support, to_refute = _distances(claim, c)
        refute_level = claim.alpha_level / len(found) / (2 if claim.side == "equivalence" else 1)
        rows.append(dict(alpha=alpha, n_group=len(xv), n_baseline=len(yv), paired=paired,
                         mean_group=float(xv.mean()), mean_baseline=float(yv.mean()), estimate=estimate, ci=ci,
                         effect_size=float(effect), effect_name=effect_name, p_value=float(support.p_value),
                         p_against_raw=p_against, scale="ratio" if claim.ratio is not None else "difference",
                         interval=name, label=label,
                         n_failed=sum(len(m) for m in missing.values()), failed_runs=_missing_text(claim.by, missing),
                         seeds_to_support=_seeds(claim, to_support, paired, sd_x, sd_y, claim.alpha_level),
                         seeds_to_refute=_seeds(claim, to_refute, paired, sd_x, sd_y, refute_level)))
    family = stats.family_verdict([r["p_value"] for r in rows], [r["p_against_raw"] for r in rows],
                                  claim.alpha_level)
    comparisons = tuple(Comparison(**r, p_against=float(a), p_support_holm=float(s), verdict=_CODES[int(v)])
                        for r, a, s, v in zip(rows, family.p_against, family.p_support, family.per_alpha,
                                              strict=True))
    return comparisons, _CODES[int(family.claim)], outcome


def _network_grid(frame: pd.DataFrame, found: list[float], columns: list[str], x_col: str):
    """(x, metric) as (seeds, alphas) arrays over the networks of the cell, NaN where a network
    has no value; the seeds; and the planned runs without a value, by alpha."""
    alphas = frame["alpha"].to_numpy(dtype=float)
    keep = np.isin(alphas, found)
    sub = frame[keep]
    ok = _usable(sub, columns)
    codes, seeds = pd.factorize(sub["seed"], sort=True)
    cols = np.searchsorted(np.asarray(found, dtype=float), alphas[keep])
    shape = (len(seeds), len(found))
    total, count, xs = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    metric = sub[columns[0]].to_numpy(dtype=float)
    xvals = sub[x_col].to_numpy(dtype=float) if x_col != "alpha" else alphas[keep]
    good = ok & (codes >= 0)
    np.add.at(total, (codes[good], cols[good]), metric[good])  # a seed run twice counts once, at its mean
    np.add.at(xs, (codes[good], cols[good]), xvals[good])
    np.add.at(count, (codes[good], cols[good]), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        v, t = total / count, xs / count
    missing: dict = {}
    bad = np.flatnonzero(~ok)
    for i in bad:
        row_seed, row_alpha = codes[i], cols[i]
        if row_seed >= 0 and count[row_seed, row_alpha] > 0:
            continue  # the seed has a value at this alpha from another run
        entry = (seeds[row_seed] if row_seed >= 0 else np.nan, _why(sub.iloc[[i]], columns))
        runs = missing.setdefault(found[row_alpha], [])
        if entry[0] not in [s for s, _ in runs]:
            runs.append(entry)
    return t, v, list(seeds), missing


def _compare_trend(claim: Claim, frame: pd.DataFrame, found: list[float], level: float, fail: float | None,
                   resolution: float | None):
    """A trend or association claim in one cell: the seeds' slopes (networks of one seed are one
    cluster), or OLS when every seed has one network (then networks are independent).

    Returns (comparison or None, verdict, outcome, why not testable).
    """
    outcome = _Outcome()
    x_col = claim.against
    columns = [claim.metric] + ([x_col] if x_col != "alpha" else [])
    t, v, seed_ids, missing = _network_grid(frame, found, columns, x_col)
    if missing and fail is not None and x_col != "alpha":
        outcome.unscorable = (f"the claim's rule cannot score them: a run without a value has no {x_col} to place "
                              "it on the slope's x axis")
        fail = None
    (outcome.missing if fail is None and claim.failed != "exclude" else outcome.scored).update(missing)
    if fail is not None:  # scored runs sit at their alpha with the claim's value
        for alpha, runs in missing.items():
            j = found.index(alpha)
            for seed, _ in runs:
                i = seed_ids.index(seed)
                t[i, j], v[i, j] = alpha, fail
    if not np.isfinite(v).any():
        return None, NOT_TESTED, outcome, f"no completed run with {', '.join(columns)}"
    points_per_seed = np.isfinite(v).sum(axis=1)
    slopes = np.asarray(stats.per_seed_slopes(t, v), dtype=float).reshape(-1)
    with_slope = int(np.isfinite(slopes).sum())
    n_nets = int(points_per_seed.sum())
    label = f"slope on {claim.against}, {_alphas_text(found)}"
    if with_slope >= 2:
        result = stats.slope_test(t, v, per_seed=True, level=level, resolution=resolution)
        n_units, sd_unit = int(result.n), float(result.se) * math.sqrt(float(result.n))
        df_of_n = lambda m: m - 1.0  # noqa: E731
        name, paired = "t of per-seed slopes (networks clustered by seed)", True
        left = int((points_per_seed == 1).sum())
        label += f" ({with_slope} seeds, {n_nets} networks)" + (f"; {left} seed(s) with one network left out"
                                                                  if left else "")
        effect, effect_name = (float(result.r), "d_z") if claim.test == "trend" else \
            (float(stats.within_seed_r(t, v)), "r (within seeds)")
    elif (points_per_seed <= 1).all() and n_nets >= 3:  # one network per seed: independent networks
        ok = np.isfinite(v)
        result = stats.slope_test(t[ok], v[ok], per_seed=False, level=level)
        n_units, sd_unit = n_nets, float(result.se) * math.sqrt(n_nets)
        df_of_n = lambda m: m - 2.0  # noqa: E731
        name, paired = "OLS slope t (one network per seed: independent)", False
        label += f" ({n_nets} networks, one per seed)"
        effect, effect_name = float(result.r), "r"
    else:
        seeds = ", ".join(_seed_text(s) for s, k in zip(seed_ids, points_per_seed, strict=True) if k >= 2) or "none"
        return None, NOT_TESTED, outcome, (
            f"not testable: {with_slope} seed with networks at two or more {claim.by if x_col == 'alpha' else x_col} "
            f"values (seed {seeds}, {n_nets} networks): networks of one seed are not independent, so a slope "
            "across them has no valid test; run 2 seeds or more (3 recommended)")
    if result.se == 0:
        outcome.no_spread.append(label)
    greater = claim.side == "greater"
    p_support = float(result.p_greater if greater else result.p_less)
    p_against = float(result.p_less if greater else result.p_greater)
    gap = float(result.estimate) * (1 if greater else -1)
    family = stats.family_verdict([p_support], [p_against], claim.alpha_level)
    seeds = {side: stats.slope_seeds_needed(d, sd_unit, df_of_n=df_of_n, alpha_level=claim.alpha_level,
                                            power=claim.power) for side, d in (("support", gap), ("refute", -gap))}
    comparison = Comparison(alpha=float("nan"), n_group=n_units, n_baseline=0, paired=paired,
                            mean_group=float(np.nanmean(v)), mean_baseline=float("nan"),
                            estimate=float(result.estimate), ci=(float(result.low), float(result.high)),
                            effect_size=effect, effect_name=effect_name, p_value=p_support,
                            p_against=p_against, p_against_raw=p_against, p_support_holm=p_support,
                            verdict=_CODES[int(family.per_alpha[0])], seeds_to_support=seeds["support"],
                            seeds_to_refute=seeds["refute"], scale="slope", interval=name, label=label,
                            n_failed=sum(len(m) for m in missing.values()),
                            failed_runs=_missing_text(claim.by, missing))
    return comparison, _CODES[int(family.claim)], outcome, ""


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
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)

        def matches(option) -> np.ndarray:  # -1 matches an alpha of -1.0; text matches text
            number = _number(option)
            same = (values == str(option)).to_numpy()
            return same | _same(number, numbers) if number is not None else same

        absent += [f"{column}={o}" for o in options if not matches(o).any()]
        keep = pd.Series(np.any([matches(o) for o in options], axis=0), index=frame.index)
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
                      "pwcca": "analyze", "cka": "analyze", "grad_": "analyze",
                      # measures beside SI: written by `selectivity measure DIR --measures all`
                      # (MonoScore also by training, in final.json, since it was added)
                      "mean_monoscore": "measure --measures all", "mean_informedness": "measure --measures all"}


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


#: The regularizer's knobs (the results columns of their strengths) and the settings columns that
#: go with each. A run drives one knob (regularizer.kind); plain training has both at 0.
KNOB_SETTINGS = {"alpha": ("regularizer.alpha",), "lambda": ("regularizer.lambda", "regularizer.kind", "kind")}


def _other_knobs_off(results: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    """The runs a claim compares: a claim over one knob (alpha, or ``by: lambda``) uses the runs
    whose other knobs are 0, so the baseline is plain training and no run of the other knob joins a
    group (a MonoLoss run has alpha 0). Runs that do not record a knob (older versions) have it at 0."""
    knob = claim.by if claim.by in KNOB_SETTINGS else ("alpha" if claim.by == "alpha" else None)
    if knob is None:
        return results
    keep = np.ones(len(results), dtype=bool)
    for other in KNOB_SETTINGS:
        if other != knob and other in results.columns:
            keep &= pd.to_numeric(results[other], errors="coerce").fillna(0.0).to_numpy() == 0
    return results[keep]


def _metric_values(results: pd.DataFrame, claim: Claim, metric: str) -> pd.Series:
    """A column the claim tests, as floats (missing values NaN, inf kept); an error if absent or not numbers."""
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


def _no_value_reason(claim: Claim, where: str, alphas_missing: dict) -> str:
    text = _missing_text(claim.by, alphas_missing)
    return f"no completed run with a finite {claim.metric} at {where}" + (f" ({text})" if text else "")


def _evaluate_cell(claim: Claim, key: tuple, frame: pd.DataFrame, level: float, interval: str, n_boot: int,
                   seed: int) -> CellResult:
    """One cell: ``frame`` holds every planned run of the cell, whatever its status."""
    fail, why_not = _failure_value(claim, frame)
    if why_not:
        return CellResult(key, NOT_TESTED, why_not)
    columns = [claim.metric] + ([claim.against] if claim.is_trend and claim.against != "alpha" else [])
    usable = _usable(frame, columns)
    resolution = metric_resolution(frame[usable], claim.metric)
    planned = set(frame["alpha"].dropna().astype(float))
    with_values = set(frame.loc[usable, "alpha"].astype(float))
    # an alpha whose every run failed still counts when the claim scores failures
    available = planned if fail is not None else with_values

    def missing_at(alphas):
        runs = _CellRuns(frame, columns)
        out = {a: runs.at(a).missing for a in alphas}
        return {a: m for a, m in out.items() if m}

    if claim.is_trend:
        found, listed = claim.group.select(planned)
        if listed or len(found) < 2:
            lacking = f"alpha = {_alphas_text(listed)}" if listed else f"two alphas of {claim.group}"
            return CellResult(key, NOT_TESTED, f"no completed run with {', '.join(columns)} at {lacking} "
                                               f"(alphas here: {_alphas_text(with_values)})")
        if claim.failed == "exclude":
            found = [a for a in found if a in with_values]
            if len(found) < 2:
                return CellResult(key, NOT_TESTED, f"no two alphas of {claim.group} with completed runs with "
                                                   f"{', '.join(columns)} (alphas here: {_alphas_text(with_values)})")
        comparison, verdict, outcome, untestable = _compare_trend(claim, frame, found, level, fail, resolution)
        comparisons = (comparison,) if comparison is not None else ()
        if untestable:
            return _finish(claim, key, NOT_TESTED, untestable, comparisons, outcome)
        reason = "" if not math.isnan(comparison.p_value) or outcome.no_spread else \
            "too few seeds or points for a slope test"
        return _finish(claim, key, verdict, reason, comparisons, outcome, resolution)
    if claim.baseline_rule is not None:  # e.g. '> 0': exactly one other value of `by` must match
        matched = [a for a in claim.baseline_rule.select(planned)[0] if a not in claim.group.select(planned)[0]]
        if len(matched) != 1:
            return CellResult(key, NOT_TESTED, f"the baseline {claim.baseline_rule} must match one {claim.by} value "
                                               f"of this cell, it matches {_alphas_text(matched)}")
        claim = dataclasses.replace(claim, baseline=matched[0])
    if not any(_same(claim.baseline, a) for a in available):
        return CellResult(key, NOT_TESTED, _no_value_reason(claim, f"the baseline {claim.by} = {claim.baseline:g}",
                                                            missing_at([claim.baseline]))
                          + f" (alphas here: {_alphas_text(with_values)})")
    others = {a for a in planned if not _same(claim.baseline, a)}
    found, listed = claim.group.select(others)
    lacking = [a for a in found if a not in available]
    if listed or not found or lacking:
        where = f"alpha = {_alphas_text(listed or lacking)}" if (listed or lacking) else str(claim.group)
        return CellResult(key, NOT_TESTED, _no_value_reason(claim, where, missing_at(lacking))
                          + f" (alphas here: {_alphas_text(with_values)})")
    comparisons, verdict, outcome = _compare_alphas(claim, frame, found, level, interval, n_boot, seed, fail,
                                                    resolution)
    reason = ""
    if verdict == INCONCLUSIVE and any(min(c.n_group, c.n_baseline) < 2 for c in comparisons):
        if all(math.isnan(c.seeds_to_support) for c in comparisons):
            reason = ("one seed per alpha and no seed-to-seed spread measured in this cell: no test can decide, "
                      "and the seeds a decisive answer needs cannot be estimated; run 3 seeds or more")
        else:
            reason = "one seed at an alpha: no test can decide (seeds needed from the spread at the other alphas)"
    return _finish(claim, key, verdict, reason, comparisons, outcome, resolution)


def _finish(claim: Claim, key: tuple, verdict: str, reason: str, comparisons: tuple, outcome: _Outcome,
            resolution: float | None = None) -> CellResult:
    """The cell's verdict after what the tests found: no spread makes it not testable; runs
    without a value that the claim does not score keep it from being decided."""
    notes = [reason] if reason else []
    if outcome.no_spread:
        step = "its resolution is unknown (the runs record no n_test)" if resolution is None else \
            f"even with the sd floored at the resolution {resolution:g}"
        return CellResult(key, NOT_TESTED, f"not testable: no spread: every seed gives the same {claim.metric} "
                                           f"({'; '.join(outcome.no_spread)}), and {step}", comparisons)
    blocked = bool(outcome.missing)
    if blocked:
        count = sum(len(m) for m in outcome.missing.values())
        notes.append(f"{count} planned run(s) gave no {claim.metric} ({_missing_text(claim.by, outcome.missing)}): "
                     "the survivors alone cannot decide the claim"
                     + (f"; {outcome.unscorable}" if outcome.unscorable else
                        "; say how they score in the claims file (failed: a value, chance or exclude)"))
        if verdict in (SUPPORTED, REFUTED):
            notes.append(f"{verdict} on the survivors alone")
            verdict = INCONCLUSIVE
            comparisons = tuple(dataclasses.replace(c, verdict=INCONCLUSIVE) for c in comparisons)
    if outcome.scored:
        how = {"exclude": "excluded", "chance": "scored at chance"}.get(claim.failed) or f"scored {claim.failed:g}"
        notes.append(f"{how} by the claim's rule ({claim.failed_text}): {_missing_text(claim.by, outcome.scored)}")
    return CellResult(key, verdict, "; ".join(notes), comparisons, blocked)


def _overall(claim: Claim, cells: list[CellResult], absent: list[str]) -> tuple[str, str]:
    """A claim over its cells: supported when every cell is (and no `where` value is absent);
    refuted when Holm over every (cell, alpha) refuting test of the cells that can decide rejects;
    else inconclusive."""
    tested = [c for c in cells if c.verdict != NOT_TESTED]
    if not tested:
        return NOT_TESTED, "; ".join(f"{c.label}: {c.reason}" if len(cells) > 1 else c.reason for c in cells)
    raw = [comp.p_against_raw for c in tested if not c.blocked for comp in c.comparisons]
    if all(c.verdict == SUPPORTED for c in tested):
        verdict = SUPPORTED  # intersection-union over cells and alphas
    elif raw and (stats.holm(raw) < claim.alpha_level).any():
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
    if len(cells) > 1 and any(c.blocked for c in cells):
        notes.append("runs without a value in " + "; ".join(c.label for c in cells if c.blocked))
    if len(cells) > 1 and verdict == INCONCLUSIVE and any(c.verdict == REFUTED for c in tested):
        notes.append("refuted in a cell, but not after Holm over every cell's alphas")
    return verdict, "; ".join(notes)


def evaluate_claim(results: pd.DataFrame, claim: Claim, *, level: float = 0.95, n_boot: int = 10_000,
                   seed: int = 0, interval: str = "t") -> ClaimResult:
    """Test one claim on a results table (one row per run: alpha, seed, status, metrics), per cell.

    Every run of the table counts as planned: completed runs with a finite value of the metric
    are tested, and the others (diverged, failed, unfinished, or a metric that is infinite or
    missing) are listed; they are scored, or left out, only as the claim's ``failed`` rule
    says, and without a rule the claim is neither supported nor refuted in their cell. Raises
    :class:`ClaimsError` for a metric or ``where`` column the table lacks; alphas a cell lacks,
    or a metric of an evaluation (robustness, analyze) not yet run, give 'not tested'.
    ``interval``: 't' (t, Welch or Fieller intervals) or 'bootstrap' (percentile, only where
    every group has BOOTSTRAP_MIN_SEEDS seeds or more; t elsewhere).
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
    results = _other_knobs_off(results, claim)
    # the compared condition (and, for reg_from, what sets it) must not split cells
    exempt = (claim.by, *SCHEDULE_COLUMNS) if claim.by != "alpha" else ()
    exempt += KNOB_SETTINGS.get(claim.by, ())
    keys = cell_columns(results, exempt=exempt)
    results = assign_cells(results, keys)  # before `where`: a failed run may not record what it filters on
    frame, reason, absent = _apply_where(results, claim)
    if reason:
        return ClaimResult(claim, NOT_TESTED, reason)
    if claim.by != "alpha":  # groups by another config value: it plays alpha's part below (after `where`)
        by = _metric_values(frame, claim, claim.by)
        frame = frame.assign(alpha=by)[by.notna()]
    done = frame[frame["status"] == "completed"] if "status" in frame.columns else frame
    if done.empty:
        return ClaimResult(claim, NOT_TESTED, "no completed run")
    why = f"{claim.metric}_reason"  # an evaluation that left the column empty says why (corruption_acc)
    if done[claim.metric].isna().all() and why in done.columns and done[why].notna().any():
        return ClaimResult(claim, NOT_TESTED, f"no {claim.metric}: {done[why].dropna().iloc[0]}")
    if keys:
        groups = [(tuple(zip(keys, map(str, k if isinstance(k, tuple) else (k,)), strict=True)), g)
                  for k, g in frame.groupby(keys if len(keys) > 1 else keys[0], dropna=False, sort=True)]
    else:
        groups = [((), frame)]
    cells = [_evaluate_cell(claim, key, g, level, interval, n_boot, seed) for key, g in groups
             if "status" not in g.columns or (g["status"] == "completed").any() or len(groups) == 1]
    lost = [g for _, g in groups if "status" in g.columns and not (g["status"] == "completed").any()]
    verdict, reason = _overall(claim, cells, absent)
    if lost and len(groups) > 1:  # runs matching no cell of completed runs: say so, never drop them silently
        runs = sum(len(g) for g in lost)
        reason = "; ".join(x for x in (reason, f"{runs} run(s) without a completed run in their cell "
                                               "(different settings, or too little recorded to place them)") if x)
        if verdict == SUPPORTED:
            verdict = INCONCLUSIVE
    return ClaimResult(claim, verdict, reason, tuple(cells))


def evaluate_claims(results: pd.DataFrame, claims: list[Claim], *, level: float = 0.95, n_boot: int = 10_000,
                    seed: int = 0, interval: str = "t") -> list[ClaimResult]:
    """:func:`evaluate_claim` for each claim, in order."""
    return [evaluate_claim(results, c, level=level, n_boot=n_boot, seed=seed, interval=interval) for c in claims]


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
