"""The claims file: its schema, its parsing, and the :class:`Claim` each entry becomes.

The fields are documented in ``selectivity/report/claims.yaml``, the default claims; a claims
file of one's own follows the same form (``selectivity report DIR --claims my.yaml``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from ...safe_yaml import load_yaml, short_repr

__all__ = ["ReportError", "ClaimsError", "TESTS", "TestSpec", "AlphaSelector", "Claim", "FAILED_RULES", "REGISTERED",
           "default_claims_path", "load_claims", "parse_claims"]


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
    "above": TestSpec("greater", "value"),                      # m(group) > value (one sample, no baseline)
    "below": TestSpec("less", "value"),                         # m(group) < value
}
#: When a claim was written: before the exploratory sweep that tests it (its exploratory verdict is a
#: test), or after that sweep was seen and before its confirmation (only the confirmation tests it).
REGISTERED = ("exploratory", "confirmation")
_DIRECTIONS = {"increasing": "greater", "decreasing": "less"}

_KEYS = {"id", "statement", "source", "metric", "group", "baseline", "by", "test", "margin", "ratio", "alpha_level",
         "power", "where", "against", "direction", "failed", "value", "registered"}
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
                raise ClaimsError(f"{where}: expected a non-empty list of alpha values, got {short_repr(value)}")
            return cls(values=tuple(numbers))
        number = _number(value)
        if number is not None:
            return cls(values=(number,))
        if value == "all":
            return cls(every=True)
        match = _COMPARISON.match(value) if isinstance(value, str) else None
        if match is None:
            raise ClaimsError(f"{where}: expected an alpha value (-1), a list ([1, 2.5]) or a comparison "
                              f"('>= 1', '< 0') or 'all', got {short_repr(value)}")
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
    value: float | None = None  # the level of an 'above' or 'below' claim
    registered: str = "exploratory"  # written before the exploratory sweep, or only before its confirmation

    @property
    def is_level(self) -> bool:
        """A one-sample claim on the group's mean against a fixed value (no baseline runs)."""
        return self.test in ("above", "below")

    @property
    def after_exploration(self) -> bool:
        """Written after the exploratory results were seen: its exploratory verdict is no test."""
        return self.registered == "confirmation"

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
        if self.is_level:
            text = f"m({a}) {'>' if self.side == 'greater' else '<'} {self.value:g}".replace("-", "−")
            return text if self.group.single is not None else f"{text} for every {self.group}"
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
    if isinstance(name, str) and _ID.match(name) and len(name) <= 80:
        return f"{origin}: claim '{name}'"
    return f"{origin}: claim #{index + 1}"


def _parse_claim(raw, index: int, origin: str, defaults: dict) -> Claim:
    where = _claim_where(origin, index, raw)
    if not isinstance(raw, dict):
        raise ClaimsError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ClaimsError(f"{where}: unknown field(s) {short_repr(sorted(map(str, unknown)))}; known fields: "
                          f"{sorted(_KEYS)}")
    missing = [k for k in _REQUIRED if raw.get(k) in (None, "")]
    if missing:
        raise ClaimsError(f"{where}: missing required field(s) {missing}")
    for key in ("id", "statement", "metric", "test", "source"):
        if key in raw and not isinstance(raw[key], str):
            raise ClaimsError(f"{where}: '{key}' must be text, got {short_repr(raw[key])}")
    if not _ID.match(raw["id"]):
        raise ClaimsError(f"{where}: id must be letters, digits, '_', '.' or '-', got {short_repr(raw['id'])}")
    test = raw["test"]
    if test not in TESTS:
        raise ClaimsError(f"{where}: unknown test {short_repr(test)}; known tests: {', '.join(TESTS)}")
    spec = TESTS[test]
    values = {}
    if spec.needs == "direction":
        direction = raw.get("direction")
        if direction not in _DIRECTIONS:
            raise ClaimsError(f"{where}: test '{test}' needs 'direction': increasing or decreasing, got "
                              f"{short_repr(direction)}")
        against = raw.get("against", "alpha" if test == "trend" else "mean_si")
        if not isinstance(against, str) or not against or against in ("seed", raw["metric"]):
            raise ClaimsError(f"{where}: 'against' must name another column of the results (alpha, mean_si, ...), "
                              f"got {short_repr(against)}")
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
            raise ClaimsError(f"{where}: '{key}' must be a positive number, got {short_repr(raw[key])}")
        values[key] = number
    if spec.needs in ("margin", "ratio") and values[spec.needs] is None:
        raise ClaimsError(f"{where}: test '{test}' needs '{spec.needs}'")
    level_value = None
    if spec.needs == "value":
        level_value = _number(raw.get("value"))
        if level_value is None or not math.isfinite(level_value):
            raise ClaimsError(f"{where}: test '{test}' needs 'value', a finite number (the level the group's mean "
                              f"is claimed {'above' if test == 'above' else 'below'}), got "
                              f"{short_repr(raw.get('value'))}")
    elif "value" in raw:
        raise ClaimsError(f"{where}: test '{test}' takes no 'value' (only above and below do)")
    registered = raw.get("registered", "exploratory")
    if registered not in REGISTERED:
        raise ClaimsError(f"{where}: 'registered' must be exploratory (written before the exploratory sweep) or "
                          f"confirmation (written after it was seen, before its confirmation), got "
                          f"{short_repr(registered)}")
    allowed = {spec.needs} | ({"margin"} if spec.margin_optional else set())
    extra = [k for k in ("margin", "ratio") if values[k] is not None and k not in allowed]
    if extra:
        raise ClaimsError(f"{where}: test '{test}' takes no '{extra[0]}'")
    settings = {**defaults, **{k: raw[k] for k in ("alpha_level", "power") if k in raw}}
    alpha_level, power = _number(settings.get("alpha_level", 0.05)), _number(settings.get("power", 0.8))
    if alpha_level is None or not 0 < alpha_level < 0.5:
        raise ClaimsError(f"{where}: alpha_level must be a number in (0, 0.5), got "
                          f"{short_repr(settings.get('alpha_level'))}")
    if power is None or not 0 < power < 1:
        raise ClaimsError(f"{where}: power must be a number in (0, 1), got {short_repr(settings.get('power'))}")
    by = raw.get("by", "alpha")
    if not isinstance(by, str) or not by or by in ("seed", raw["metric"]):
        raise ClaimsError(f"{where}: 'by' must name a column of the results (alpha, reg_from, ...), got "
                          f"{short_repr(by)}")
    if by != "alpha" and spec.side == "trend":
        raise ClaimsError(f"{where}: 'by' is for contrasts; a trend or association names its x axis in 'against'")
    group = AlphaSelector.parse(raw["group"], f"{where}, group")
    baseline = AlphaSelector.parse(raw.get("baseline", defaults.get("baseline", 0.0)), f"{where}, baseline")
    rule = None
    if baseline.single is None:
        if by == "alpha" or baseline.op is None:
            raise ClaimsError(f"{where}: baseline must be one alpha value (e.g. 0), got "
                              f"{short_repr(raw.get('baseline'))}")
        rule, baseline = baseline, AlphaSelector(values=(math.nan,))
    failed = settings_failed = raw.get("failed", defaults.get("failed"))
    if failed is not None and failed not in FAILED_RULES:
        number = _number(failed)
        if number is None or not math.isfinite(number):
            raise ClaimsError(f"{where}: 'failed' must be a number (the value a run without one scores, in the "
                              f"metric's units), chance or exclude, got {short_repr(settings_failed)}")
        failed = number
    filters = raw.get("where") or {}
    if not isinstance(filters, dict) or any(not isinstance(v, (str, int, float, list)) for v in filters.values()):
        raise ClaimsError(f"{where}: 'where' must map results columns to a value or a list of values, got "
                          f"{short_repr(filters)}")
    return Claim(id=raw["id"], statement=" ".join(raw["statement"].split()), metric=raw["metric"], group=group,
                 test=test, baseline=baseline.single, margin=values["margin"], ratio=values["ratio"],
                 alpha_level=alpha_level, power=power, where=dict(filters), source=raw.get("source", ""),
                 origin=origin, against=against, direction=direction, by=by, baseline_rule=rule, failed=failed,
                 value=level_value, registered=registered)


def parse_claims(data, origin: str = "<claims>") -> list[Claim]:
    """Claims from parsed YAML: a mapping with ``claims`` (and optional ``defaults``), or a bare list."""
    if isinstance(data, list):
        data = {"claims": data}
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ClaimsError(f"{origin}: expected a mapping with a 'claims' list (or a list of claims)")
    unknown = set(data) - {"claims", "defaults"}
    if unknown:
        raise ClaimsError(f"{origin}: unknown top-level key(s) {short_repr(sorted(map(str, unknown)))}; "
                          f"expected 'claims' and 'defaults'")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - _DEFAULT_KEYS:
        raise ClaimsError(f"{origin}: 'defaults' may set only {sorted(_DEFAULT_KEYS)}, got {short_repr(defaults)}")
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
            data = load_yaml(text, f"claims file {path}")
        except yaml.YAMLError as err:
            raise ClaimsError(f"{path} is not valid YAML: {err}") from None
        for claim in parse_claims(data, origin=path.name if path == default_claims_path() else str(path)):
            clash = next((c for c in claims if c.id == claim.id), None)
            if clash is not None:
                raise ClaimsError(f"{claim.origin}: claim '{claim.id}' is already defined in {clash.origin}; "
                                  "pick another id (or leave out the default claims)")
            claims.append(claim)
    return claims
