r"""Dimensionality of layer representations: PCs for a share of variance, participation ratio.

For an activation matrix A (N samples x U units), centred per unit, the covariance
eigenvalues :math:`\lambda_1 \ge \dots \ge \lambda_U \ge 0` are the squared singular values
of the centred matrix divided by N - 1. Two summaries of the spectrum:

- ``pc95``: the fewest principal components whose variance reaches 95% of the total
  (Leavitt & Morcos 2020; the share is a parameter, 95% the default).
- participation ratio :math:`PR = (\sum_k \lambda_k)^2 / \sum_k \lambda_k^2`: U for isotropic
  data, 1 for rank-1 data, a smooth count of the directions that carry variance.

Both grow with the number of samples until N is well above the true dimension, so networks
and inputs are compared at a fixed ``n_samples``. Spectra are computed in float64 from the
SVD of the centred matrix.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ...core import Probe
from ...core.probe import LayerSpec
from ..eval_mode import eval_mode

__all__ = [
    "collect_activations",
    "compare_dimensionality",
    "covariance_spectrum",
    "layer_dimensionality",
    "n_components_for_variance",
    "participation_ratio",
]


def _check_acts(acts: Tensor, name: str = "acts") -> Tensor:
    if not isinstance(acts, Tensor) or acts.ndim != 2:
        shape = tuple(acts.shape) if isinstance(acts, Tensor) else type(acts).__name__
        raise ValueError(f"{name} must be a (N, U) tensor of N samples and U units, got {shape}")
    if acts.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples to have a variance, got {acts.shape[0]}")
    if not acts.is_floating_point():
        acts = acts.double()
    if not bool(torch.isfinite(acts).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return acts


def _check_threshold(threshold: float) -> float:
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold is a share of variance in (0, 1], got {threshold!r}")
    return float(threshold)


def covariance_spectrum(acts: Tensor) -> Tensor:
    r"""Eigenvalues of the sample covariance of ``acts``, largest first, in float64.

    .. math:: \lambda_k = s_k^2 / (N - 1), \qquad A - \bar A = U S V^\top

    Args:
        acts (Tensor): (N, U) activations (rows are samples).

    Returns:
        Tensor: (min(N, U),) float64 eigenvalues; the remaining U - min(N, U) are zero.

    Example::

        >>> covariance_spectrum(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.5], [0.0, -0.5]]))
        tensor([0.6667, 0.1667], dtype=torch.float64)
    """
    acts = _check_acts(acts).double()
    centred = acts - acts.mean(dim=0, keepdim=True)
    return torch.linalg.svdvals(centred).square() / (acts.shape[0] - 1)


def _n_components(spectrum: Tensor, threshold: float) -> int:
    """Smallest k with sum(spectrum[:k]) >= threshold * sum(spectrum); 0 for no variance."""
    total = spectrum.sum()
    if total <= 0:
        return 0
    share = spectrum.cumsum(0) / total
    # A relative slack of 1e-12 so that data exactly in k dimensions counts k, not k + 1.
    return min(int((share < threshold - 1e-12).sum()) + 1, spectrum.numel())


def _participation_ratio(spectrum: Tensor) -> float:
    total = spectrum.sum()
    if total <= 0:
        return 0.0
    return float(total.square() / spectrum.square().sum())


def n_components_for_variance(acts: Tensor, threshold: float = 0.95) -> int:
    r"""The number of principal components needed to explain ``threshold`` of the variance.

    .. math:: k^* = \min\{k : \textstyle\sum_{j \le k} \lambda_j \ge t \sum_j \lambda_j\}

    Args:
        acts (Tensor): (N, U) activations.
        threshold (float): t, the share of variance, in (0, 1]. Default: 0.95.

    Returns:
        int: k* in [1, min(N - 1, U)]; 0 when the activations do not vary at all.

    Example::

        >>> acts = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.1], [0.0, -0.1]])
        >>> n_components_for_variance(acts), n_components_for_variance(acts, threshold=0.999)
        (1, 2)
    """
    return _n_components(covariance_spectrum(acts), _check_threshold(threshold))


def participation_ratio(acts: Tensor) -> float:
    r"""Participation ratio of the covariance spectrum.

    .. math:: PR = \frac{(\sum_k \lambda_k)^2}{\sum_k \lambda_k^2}

    Args:
        acts (Tensor): (N, U) activations.

    Returns:
        float: PR in [1, min(N - 1, U)]; U for isotropic data, 1 for rank-1 data, 0 when
        the activations do not vary at all.

    Example::

        >>> round(participation_ratio(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])), 4)
        2.0
    """
    return _participation_ratio(covariance_spectrum(acts))


def _summary(acts: Tensor, threshold: float) -> dict[str, float]:
    spectrum = covariance_spectrum(acts)
    return {
        _pc_key(threshold): _n_components(spectrum, threshold),
        "participation_ratio": _participation_ratio(spectrum),
    }


def _pc_key(threshold: float) -> str:
    """ "pc95" for 0.95, "pc99" for 0.99, "pc99.9" for 0.999."""
    return f"pc{threshold * 100:g}"


def collect_activations(
    model: nn.Module, x: Tensor, layers: LayerSpec = None, batch_size: int = 256
) -> dict[str, Tensor]:
    """Unit activations (N, U) of each layer for inputs ``x``, in eval mode, without grad.

    Conv channels are spatially averaged (:class:`selectivity.core.Probe`). Batches run on
    the model's device; results are returned on the CPU, in the order of ``layers``
    (None: the model's default selectivity layers).
    """
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got {getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = next((t.device for t in (*model.parameters(), *model.buffers())), x.device)
    chunks: dict[str, list[Tensor]] = {}
    with eval_mode(model), torch.no_grad(), Probe(model, layers) as probe:
        for i in range(0, x.shape[0], batch_size):
            for name, acts in probe(x[i : i + batch_size].to(device)).items():
                chunks.setdefault(name, []).append(acts.cpu())
    return {name: torch.cat(parts) for name, parts in chunks.items()}


def _take(x: Tensor, n_samples: int | None, name: str = "x") -> Tensor:
    if n_samples is None:
        return x
    if not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
    if x.shape[0] < n_samples:
        raise ValueError(
            f"{name} has {x.shape[0]} samples but n_samples={n_samples}: dimensionality depends on the "
            "number of samples, so compare at a fixed n_samples that every input has"
        )
    return x[:n_samples]


def layer_dimensionality(
    model: nn.Module,
    x: Tensor,
    layers: LayerSpec = None,
    n_samples: int | None = None,
    threshold: float = 0.95,
    batch_size: int = 256,
) -> dict[str, dict[str, float]]:
    """Dimensionality of each layer's representation of the first ``n_samples`` inputs.

    Args:
        model (nn.Module): the network (run in eval mode, modes restored afterwards).
        x (Tensor): (N, ...) inputs in the model's input space.
        layers: module names, glob patterns or modules; None for the model's default
            selectivity layers. Default: None.
        n_samples (int | None): the first n_samples rows of x are used (shuffle beforehand
            for a random subset); fewer rows raises ValueError. Both measures grow with the
            number of samples, so keep it fixed across networks and inputs. None: all rows.
            Default: None.
        threshold (float): share of variance for the PC count. Default: 0.95.
        batch_size (int): forward batch size. Default: 256.

    Returns:
        dict: layer -> {"pc95": int, "participation_ratio": float} (the key is
        "pc<100 * threshold>", e.g. "pc90" for 0.9), in the order of ``layers``.
    """
    threshold = _check_threshold(threshold)
    acts = collect_activations(model, _take(x, n_samples), layers, batch_size)
    return {name: _summary(a, threshold) for name, a in acts.items()}


def compare_dimensionality(
    model: nn.Module,
    clean: Tensor,
    perturbed: Mapping[str, Tensor],
    layers: LayerSpec = None,
    n_samples: int | None = None,
    threshold: float = 0.95,
    batch_size: int = 256,
) -> dict[str, dict[str, dict[str, float]]]:
    r"""Dimensionality of clean and perturbed representations, and of the change itself.

    For each perturbation p (e.g. {"pgd_8": x_adv, "gaussian_noise_3": x_c}) and layer, with
    A the clean and A_p the perturbed (N, U) activations of the *same* samples:

    - ``pc95``, ``participation_ratio``: of A_p (for "clean", of A);
    - ``delta_pc95``, ``delta_participation_ratio``: minus those of A (how much the
      perturbation raises the representation's dimensionality);
    - ``change_pc95``, ``change_participation_ratio``: of :math:`A_p - A`, the dimensionality
      of the change the perturbation causes (0 for "clean").

    Args:
        model (nn.Module): the network.
        clean (Tensor): (N, ...) clean inputs.
        perturbed (Mapping[str, Tensor]): name -> (N, ...) perturbed versions of ``clean``,
            row for row.
        layers, n_samples, threshold, batch_size: as in :func:`layer_dimensionality`.

    Returns:
        dict: "clean" and each perturbation name -> layer -> the measures above.
    """
    threshold = _check_threshold(threshold)
    key = _pc_key(threshold)
    clean = _take(clean, n_samples, "clean")
    base = collect_activations(model, clean, layers, batch_size)
    base_summary = {name: _summary(a, threshold) for name, a in base.items()}
    zero = {f"delta_{key}": 0, "delta_participation_ratio": 0.0, f"change_{key}": 0, "change_participation_ratio": 0.0}
    out = {"clean": {name: {**s, **zero} for name, s in base_summary.items()}}
    for pname, xp in perturbed.items():
        if pname == "clean":
            raise ValueError('"clean" is reserved for the unperturbed inputs: rename that perturbation')
        xp = _take(xp, n_samples, pname)
        if xp.shape != clean.shape:
            raise ValueError(
                f"perturbation {pname!r} has shape {tuple(xp.shape)} but clean has {tuple(clean.shape)}: "
                "perturbed inputs must pair with the clean ones row for row"
            )
        acts = collect_activations(model, xp, layers, batch_size)
        out[pname] = {}
        for name, a in acts.items():
            s = _summary(a, threshold)
            change = _summary(a.double() - base[name].double(), threshold)
            out[pname][name] = {
                **s,
                f"delta_{key}": s[key] - base_summary[name][key],
                "delta_participation_ratio": s["participation_ratio"] - base_summary[name]["participation_ratio"],
                f"change_{key}": change[key],
                "change_participation_ratio": change["participation_ratio"],
            }
    return out
