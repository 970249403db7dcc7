"""Capture one number per unit per sample from chosen modules of any PyTorch model.

A unit is a neuron of a layer with output (N, U), or a channel of a layer with output
(N, U, *spatial), reduced to one number per image by its spatial mean. Values are reduced
(or copied) inside the forward hook, so a module that later modifies the output in place
(an in-place ReLU) cannot change what was captured.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["Probe", "LayerSelectionError", "resolve_layers", "default_layers", "unit_activations"]

LayerSpec = str | nn.Module | Sequence[str | nn.Module] | None

# Default rule for models that do not name their own layers: the residual blocks, whose
# output is the block's output after its final ReLU (the papers' choice).
_BLOCK_CLASS = re.compile(r"(block|bottleneck)$", re.IGNORECASE)
_GLOB_CHARS = set("*?[")


class LayerSelectionError(ValueError):
    """A layer name or pattern that matches no module, or a model with no default layers."""


def unit_activations(output: Tensor, name: str = "layer") -> Tensor:
    """Reduce a module output to (N, U): spatial mean for (N, U, *S), a copy for (N, U).

    Low-precision outputs (bfloat16 under autocast) are averaged in float32.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"layer {name!r} returned {type(output).__name__}; a tensor of shape (N, U, ...) is needed")
    if output.ndim < 2:
        raise ValueError(f"layer {name!r} output has shape {tuple(output.shape)}; expected (N, U) or (N, U, H, W)")
    if output.ndim == 2:
        return output.to(torch.float32 if output.dtype != torch.float64 else output.dtype, copy=True)
    dtype = torch.float64 if output.dtype == torch.float64 else torch.float32
    return output.mean(dim=tuple(range(2, output.ndim)), dtype=dtype)


def default_layers(model: nn.Module) -> list[str]:
    """The layers a model is measured and regularized at, when the user names none.

    A model may name them itself in a ``selectivity_layers`` attribute (all models of the
    registry do). Otherwise: every residual block (a module whose class name ends with
    ``Block`` or ``Bottleneck``) that contains no other block.
    """
    named = getattr(model, "selectivity_layers", None)
    if named:
        return list(named)
    blocks = [n for n, m in model.named_modules() if n and _BLOCK_CLASS.search(type(m).__name__)]
    innermost = [n for n in blocks if not any(o != n and o.startswith(n + ".") for o in blocks)]
    if not innermost:
        candidates = [n for n, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.GELU, nn.SiLU))]
        hint = f" e.g. some of {candidates[:8]}" if candidates else ""
        raise LayerSelectionError(
            f"{type(model).__name__} names no selectivity layers (no `selectivity_layers` attribute) and has "
            f"no residual blocks; pass layers=[...] with module names or glob patterns{hint}"
        )
    return innermost


def _glob_match(name: str, pattern: str) -> bool:
    """Match dotted module names segment by segment: ``*`` stays within one segment
    (``layer*`` is ``layer1``, not ``layer1.conv1``), ``**`` spans any number of segments."""

    def match(parts: list[str], pats: list[str]) -> bool:
        if not pats:
            return not parts
        if pats[0] == "**":
            return any(match(parts[i:], pats[1:]) for i in range(len(parts) + 1))
        return bool(parts) and fnmatch.fnmatchcase(parts[0], pats[0]) and match(parts[1:], pats[1:])

    return match(name.split("."), pattern.split("."))


def resolve_layers(model: nn.Module, layers: LayerSpec = None) -> list[str]:
    """Module names, in the order requested, for exact names, glob patterns or modules.

    Globs match dotted names segment by segment (``layer*``, ``layer*.*``, ``**.relu``) and
    expand in the model's module order; duplicates are dropped. A name or pattern that
    matches nothing raises :class:`LayerSelectionError` listing the closest module names.
    """
    if layers is None:
        requested: list[str | nn.Module] = list(default_layers(model))
    elif isinstance(layers, (str, nn.Module)):
        requested = [layers]
    else:
        requested = list(layers)
    if not requested:
        raise LayerSelectionError("layers is empty: name at least one module")
    modules = dict(model.named_modules())
    modules.pop("", None)
    by_identity = {id(m): n for n, m in modules.items()}
    names: list[str] = []
    for spec in requested:
        if isinstance(spec, nn.Module):
            if id(spec) not in by_identity:
                raise LayerSelectionError(f"module {type(spec).__name__} is not a submodule of the model")
            found = [by_identity[id(spec)]]
        elif not isinstance(spec, str):
            raise LayerSelectionError(f"layers must be names, glob patterns or modules, got {type(spec).__name__}")
        elif _GLOB_CHARS & set(spec):
            found = [n for n in modules if _glob_match(n, spec)]
        else:
            found = [spec] if spec in modules else []
        if not found:
            close = difflib.get_close_matches(str(spec), list(modules), n=5, cutoff=0.4)
            hint = f"; closest module names: {close}" if close else f"; module names look like {list(modules)[:5]}"
            raise LayerSelectionError(f"layer {spec!r} matches no module of {type(model).__name__}{hint}")
        names.extend(n for n in found if n not in names)
    return names


class Probe:
    """Forward hooks that keep, for each chosen module, its (N, U) unit activations.

    Args:
        model (nn.Module): any model.
        layers (str | list | None): exact module names, glob patterns (``"layer*.?"``),
            module objects, or None for :func:`default_layers`. Default: None.
        detach (bool): keep activations out of the autograd graph (measuring) or in it
            (regularizing). Default: True.

    After each forward pass of ``model``, ``probe.activations`` maps layer name to a (N, U)
    tensor, in the order of ``probe.layers``. Use it as a context manager, or call
    :meth:`close`, to remove the hooks.

    A module that runs more than once in one forward pass (a ReLU object reused inside a
    block) keeps its last call's output, with a one-time warning: select a module that runs
    once for unambiguous units.

    Example::

        >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        >>> with Probe(net, "1") as probe:
        ...     _ = net(torch.ones(4, 2))
        ...     probe.activations["1"].shape
        torch.Size([4, 3])
    """

    def __init__(self, model: nn.Module, layers: LayerSpec = None, *, detach: bool = True):
        self.model = model
        self.layers = resolve_layers(model, layers)
        self.detach = detach
        self.enabled = True
        self.activations: dict[str, Tensor] = {}
        self._calls: dict[str, int] = {}
        self._warned: set[tuple[str, str]] = set()
        modules = dict(model.named_modules())
        self._handles = [model.register_forward_pre_hook(self._start_pass)]
        try:
            for name in self.layers:
                self._handles.append(modules[name].register_forward_hook(self._hook_for(name)))
        except BaseException:
            self.close()
            raise

    def _start_pass(self, module: nn.Module, args) -> None:
        if self._capturing():
            self.clear()

    def _capturing(self) -> bool:
        # When regularizing (detach=False), a pass without autograd (evaluation) is skipped.
        return self.enabled and (self.detach or torch.is_grad_enabled())

    def _hook_for(self, name: str):
        def hook(module: nn.Module, args, output) -> None:
            if not self._capturing():
                return
            calls = self._calls.get(name, 0) + 1
            self._calls[name] = calls
            if calls == 2:
                self.warn_once(
                    name,
                    "reused",
                    f"module {name!r} ran more than once in one forward pass; keeping its last call's output. "
                    "Select a module that runs once (e.g. the block) for unambiguous units.",
                )
            if self.detach:
                with torch.no_grad():
                    self.activations[name] = unit_activations(output.detach(), name)
            else:
                self.activations[name] = unit_activations(output, name)

        return hook

    def warn_once(self, name: str, kind: str, message: str) -> None:
        """Issue ``message`` once per (layer, kind) for the life of this probe."""
        if (name, kind) not in self._warned:
            self._warned.add((name, kind))
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def collect(self, batch_size: int | None = None) -> dict[str, Tensor]:
        """The last pass's activations, checked: every layer fired, with ``batch_size`` rows."""
        missing = [n for n in self.layers if n not in self.activations]
        if missing:
            raise RuntimeError(
                f"layers {missing} did not run in the last forward pass of {type(self.model).__name__}; "
                "run the model on a batch first (and check that these modules are used by forward)"
            )
        if batch_size is not None:
            for name in self.layers:
                rows = self.activations[name].shape[0]
                if rows != batch_size:
                    raise ValueError(
                        f"layer {name!r} captured {rows} samples but {batch_size} labels were given: "
                        "labels must belong to the last forward pass"
                    )
        return {n: self.activations[n] for n in self.layers}

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        """Run the model on ``x`` and return the activations of every layer."""
        self.model(x)
        return self.collect(batch_size=x.shape[0])

    def clear(self) -> None:
        """Drop the stored activations (and the graph they may hold)."""
        self.activations = {}
        self._calls = {}

    def close(self) -> None:
        """Remove every hook; the model is as it was before."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear()

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
