"""`selectivity compare A B`: do two runs hold the same weights, and how far apart are they?

For each tensor of a run's ``weights.safetensors`` (every parameter and batch-norm buffer,
read with its checksum verified) the relative difference is

    d(a, b) = ||a - b|| / max(||a||, ||b||)      (Frobenius norms, in float64; 0 when both are 0)

and the comparison reports the largest d over all tensors, naming the tensor. A and B are two
run directories (or two ``.safetensors`` files), or two sweep directories, whose runs are then
paired by directory name (a run's name is its config's id, the same under every executor).

It is how a user checks on their own machine that the executors compute the same thing: with
``--set train.dtype=float64``, ``sweep --executor stacked`` against ``--executor local``, or
``torchrun --nproc-per-node=2 -m selectivity train`` against one process, agree to 1e-9 or
better. In float32 they need not: a ReLU input whose sign differs between two summation orders
sends two runs apart, and where that happens depends on the processor's kernels.

Example::

    selectivity compare runs/check/stacked runs/check/local --rtol 1e-9
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..runs import RunError, RunPaths, load_tensors

__all__ = ["Comparison", "compare_report", "compare_weights", "relative_difference", "weights_file"]


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / max(||a||, ||b||) in float64; 0 when both are zero (any dtype, integers too);
    ``inf`` when either holds a NaN or an infinity (a non-finite value is never equal to anything,
    itself included).

    Example::

        >>> relative_difference(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 4.5]))
        0.1
        >>> relative_difference(torch.tensor([float("nan")]), torch.tensor([float("nan")]))
        inf
    """
    a, b = a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return math.inf
    scale = max(a.norm().item(), b.norm().item())
    return (a - b).norm().item() / scale if scale > 0 else 0.0


def weights_file(path: str | Path) -> Path:
    """The weights of a run directory, or ``path`` itself when it is a ``.safetensors`` file."""
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        return path
    weights = RunPaths(path).weights
    if weights.is_file():
        return weights
    if not path.exists():
        raise RunError(f"{path} does not exist; expected a run directory, a sweep directory or a .safetensors file")
    raise RunError(f"{path} holds no weights.safetensors (not a finished run); expected a run directory, "
                   "a sweep directory or a .safetensors file")


def _runs_in(sweep: Path) -> dict[str, Path]:
    return {p.name: RunPaths(p).weights for p in sorted(sweep.iterdir()) if RunPaths(p).weights.is_file()}


def _pairs(a: Path, b: Path) -> list[tuple[str, Path, Path]]:
    """(label, weights of A, weights of B): one pair of runs, or a sweep's runs paired by name."""
    sweeps = [p.is_dir() and not RunPaths(p).weights.exists() and bool(_runs_in(p)) for p in (a, b)]
    if not any(sweeps):
        return [("", weights_file(a), weights_file(b))]
    if not all(sweeps):
        sweep, other = (a, b) if sweeps[0] else (b, a)
        raise RunError(f"{sweep} is a sweep directory but {other} is not; compare two runs or two sweeps")
    runs_a, runs_b = _runs_in(a), _runs_in(b)
    if runs_a.keys() != runs_b.keys():
        only = sorted(runs_a.keys() ^ runs_b.keys())
        raise RunError(f"the sweeps {a} and {b} hold different finished runs ({', '.join(only[:4])}"
                       f"{', ...' if len(only) > 4 else ''} in one only); finish both, or compare run by run")
    return [(f"{name}/", runs_a[name], runs_b[name]) for name in runs_a]


@dataclass(frozen=True)
class Comparison:
    """Every tensor's relative difference between A and B (``name -> d``) and the dtypes met."""

    differences: dict[str, float]
    dtypes_a: tuple[str, ...]
    dtypes_b: tuple[str, ...]
    pairs: int
    non_finite: dict[str, str] = field(default_factory=dict)  # tensor -> what is not finite, and where

    @property
    def worst(self) -> tuple[str, float]:
        """(tensor, d) of the largest relative difference."""
        name = max(self.differences, key=lambda k: self.differences[k])
        return name, self.differences[name]

    def beyond(self, rtol: float) -> list[str]:
        """The tensors whose relative difference exceeds ``rtol``."""
        return [k for k, d in self.differences.items() if d > rtol]


def compare_weights(a: str | Path, b: str | Path) -> Comparison:
    """Relative difference of every tensor of A and B (runs, weight files or sweeps); RunError when they
    cannot be compared (missing, corrupt, other tensor names or shapes)."""
    a, b = Path(a), Path(b)
    differences: dict[str, float] = {}
    non_finite: dict[str, str] = {}
    dtypes_a, dtypes_b = set(), set()
    pairs = _pairs(a, b)
    for label, fa, fb in pairs:
        ta, _ = load_tensors(fa)
        tb, _ = load_tensors(fb)
        if ta.keys() != tb.keys():
            only = sorted(ta.keys() ^ tb.keys())
            raise RunError(f"{fa} and {fb} hold different tensors ({', '.join(only[:4])} in one only): "
                           "not the same model")
        for name in sorted(ta):
            if ta[name].shape != tb[name].shape:
                raise RunError(f"{label}{name} is {tuple(ta[name].shape)} in {fa} but {tuple(tb[name].shape)} "
                               f"in {fb}: not the same model")
            differences[f"{label}{name}"] = relative_difference(ta[name], tb[name])
            bad = "; ".join(text for text in (_non_finite(ta[name], "A"), _non_finite(tb[name], "B")) if text)
            if bad:
                non_finite[f"{label}{name}"] = bad
            if ta[name].is_floating_point():
                dtypes_a.add(str(ta[name].dtype).removeprefix("torch."))
                dtypes_b.add(str(tb[name].dtype).removeprefix("torch."))
    if not differences:
        raise RunError(f"{a} and {b} hold no tensors to compare")
    return Comparison(differences, tuple(sorted(dtypes_a)), tuple(sorted(dtypes_b)), len(pairs), non_finite)


def _non_finite(t: torch.Tensor, side: str) -> str:
    """'NaN in A (3 of 432 entries)' (and infinities), or '' for a finite tensor."""
    if not t.is_floating_point():
        return ""
    nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    parts = [f"{what} in {side} ({count} of {t.numel()} entries)" for what, count in (("NaN", nan), ("inf", inf))
             if count]
    return ", ".join(parts)


def compare_report(comparison: Comparison, rtol: float, top: int = 5) -> list[str]:
    """The lines ``selectivity compare`` prints: what was compared, the largest differences, the verdict."""
    c = comparison
    lines = [f"compared {len(c.differences)} tensors (parameters and buffers) of {c.pairs} pair(s) of runs; "
             f"dtypes {'/'.join(c.dtypes_a) or '-'} and {'/'.join(c.dtypes_b) or '-'}",
             "relative difference ||a - b|| / max(||a||, ||b||), largest first:"]
    ranked = sorted(c.differences.items(), key=lambda kv: kv[1], reverse=True)[:top]
    width = max(len(name) for name, _ in ranked)
    lines += [f"  {name:<{width}}  {d:.3e}" for name, d in ranked]
    name, worst = c.worst
    beyond = c.beyond(rtol)
    for tensor, what in list(c.non_finite.items())[:top]:
        lines.append(f"  not finite: {tensor}: {what}")
    if c.non_finite:
        more = f" (+{len(c.non_finite) - top} more)" if len(c.non_finite) > top else ""
        lines.append(f"NOT equal: {len(c.non_finite)} of {len(c.differences)} tensors hold NaN or inf, first "
                     f"{next(iter(c.non_finite))}{more}; a value that is not finite is never equal")
    elif beyond:
        lines.append(f"NOT equal within rtol {rtol:g}: {len(beyond)} of {len(c.differences)} tensors differ by more "
                     f"(largest {worst:.3e}, {name})")
    else:
        lines.append(f"equal within rtol {rtol:g}: largest relative difference {worst:.3e} ({name})")
    return lines
