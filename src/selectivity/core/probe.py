"""Capture one number per unit per sample from chosen modules of any PyTorch model.

A unit is a neuron of a layer with output (N, U), or a channel of a layer with output
(N, U, *spatial), reduced to one number per image by its spatial mean, or a hidden neuron
of a transformer's token layer with output (N, T, U) (units last), reduced over tokens:

    response of unit u to input n = mean over the chosen real tokens t of max(x[n, t, u], 0)

The chosen tokens are all of them, CLS included (``tokens="mean"``, the default, as a
channel is averaged over all positions), the class token alone (``"cls"``), the patch
tokens alone (``"patches"``: all after the class and other prefix tokens) or the last token
(``"last"``: what a decoder language model has read everything by). **Real tokens** are those
the batch's attention mask marks (N, T), 1 for a token and 0 for padding: a padding token
never counts, so a text's value does not depend on the texts it was batched with. The rules
then read the real tokens in order: "cls" is the first, "patches" all after the first
``prefix_tokens``, "last" the last. Without a mask (images) every token is real. The probe
learns the mask of each forward pass from the call itself (an ``attention_mask`` keyword, the
Hugging Face convention, or a first argument that carries one, as a tokenizer's batch does)
or from :meth:`Probe.set_token_mask` before the pass. Each token's response is its positive part first
(``positive_part=True``, the default): SI needs non-negative responses and a GELU's output
can be negative; ``positive_part=False`` keeps raw values (then the meter and the
regularizer warn of negative responses). A probe that applies the positive part says so
once, in a warning.

Which layers are token layers is said by the model, never guessed from a shape: its
``selectivity_token_layers`` attribute (names or globs; an empty list says it has none),
else the transformer rule (every module inside a block that holds an attention module).
A 3-D output of a layer that is not a token layer is an error, since (N, U, length) and
(N, tokens, U) cannot be told apart.

Values are reduced (or copied) inside the forward hook, so a module that later modifies
the output in place (an in-place ReLU) cannot change what was captured.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["Probe", "LayerSelectionError", "resolve_layers", "default_layers", "token_layers", "unit_activations",
           "TOKEN_REDUCTIONS", "POSITIVE_PART_WARNING"]

LayerSpec = str | nn.Module | Sequence[str | nn.Module] | None

# Default rule for models that do not name their own layers: the residual blocks, whose
# output is the block's output after its final ReLU (the papers' choice).
_BLOCK_CLASS = re.compile(r"(block|bottleneck)$", re.IGNORECASE)
_GLOB_CHARS = set("*?[")
# Transformers: a block is a module with an attention child (timm's Block, torchvision's
# EncoderBlock, Hugging Face's ViTLayer); its units are the MLP's hidden neurons after the
# activation module.
_ATTENTION_CLASS = re.compile(r"attention$", re.IGNORECASE)
_ACTIVATION_CLASS = re.compile(r"(gelu|relu|relu6|silu|swish|mish|activation)$", re.IGNORECASE)

TOKEN_REDUCTIONS = ("mean", "cls", "patches", "last")
POSITIVE_PART_WARNING = (
    "token layers {layers}: each token's response is taken as its positive part max(x, 0) before the mean over "
    "{tokens} (SI needs non-negative responses; GELU outputs can be negative). positive_part=False "
    "(regularizer.positive_part: false) keeps raw values"
)
_TOKENS_SAID = {"mean": "all (real) tokens", "cls": "the class token", "patches": "the patch tokens", "last": "the last token"}


class LayerSelectionError(ValueError):
    """A layer name or pattern that matches no module, or a model with no default layers."""


def unit_activations(
    output: Tensor,
    name: str = "layer",
    layout: str | None = None,
    *,
    tokens: str = "mean",
    positive_part: bool = True,
    prefix_tokens: int | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Reduce a module output to (N, U), one number per unit and sample.

    Args:
        output (Tensor): the module's output.
        name (str): the layer's name, for errors. Default: "layer".
        layout (str | None): ``"channels"``: (N, U, *S), the mean over the positions S;
            ``"tokens"``: (N, T, U), units last, reduced as the module docstring says; None:
            (N, U) or (N, U, H, W, ...), and a 3-D output is an error (it could be either).
            A (N, U) output is copied in every layout. Default: None.
        tokens (str): the tokens a token layer is averaged over: ``"mean"`` (all), ``"cls"``
            (the first alone), ``"patches"`` (all after the ``prefix_tokens``) or ``"last"``
            (the last alone). Default: "mean".
        positive_part (bool): a token's response is max(x, 0) (token layers only). Default: True.
        prefix_tokens (int | None): class and other non-patch tokens at the start of the
            sequence; needed by ``"cls"`` and ``"patches"``. Default: None.
        mask (Tensor | None): (N, T), nonzero for the real tokens of each sample (an attention
            mask): the rule reads only those (token layers only). None: every token is real.

    Low-precision outputs (bfloat16 under autocast) are averaged in float32.

    Example::

        >>> x = torch.tensor([[[1.0, -2.0], [3.0, 4.0]]])  # (N=1, T=2, U=2)
        >>> unit_activations(x, layout="tokens")
        tensor([[2., 2.]])
        >>> unit_activations(x, layout="tokens", tokens="patches", prefix_tokens=1, positive_part=False)
        tensor([[3., 4.]])
        >>> unit_activations(x, layout="tokens", mask=torch.tensor([[1, 0]]))  # token 1 is padding
        tensor([[1., 0.]])
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"layer {name!r} returned {type(output).__name__}; a tensor of shape (N, U, ...) is needed")
    if output.ndim < 2:
        raise ValueError(f"layer {name!r} output has shape {tuple(output.shape)}; expected (N, U) or (N, U, H, W)")
    if layout not in (None, "channels", "tokens"):
        raise ValueError(f"layout must be 'channels', 'tokens' or None, got {layout!r}")
    dtype = torch.float64 if output.dtype == torch.float64 else torch.float32
    if output.ndim == 2:
        return output.to(dtype, copy=True)
    if layout == "tokens":
        return _token_units(output, name, tokens, positive_part, prefix_tokens, dtype, mask)
    if layout is None and output.ndim == 3:
        raise ValueError(
            f"layer {name!r} output has shape {tuple(output.shape)}: units on dim 1 (a Conv1d's (N, U, length)) or "
            "last (a transformer's (N, tokens, U))? The model does not say: list its token layers in "
            "model.selectivity_token_layers (names or globs; an empty list reads every 3-D output as (N, U, length))"
        )
    return output.mean(dim=tuple(range(2, output.ndim)), dtype=dtype)


def _token_units(output: Tensor, name: str, tokens: str, positive_part: bool, prefix_tokens: int | None,
                 dtype: torch.dtype, mask: Tensor | None = None) -> Tensor:
    if output.ndim != 3:
        raise ValueError(f"layer {name!r} is a token layer, whose output is (N, tokens, units), but it returned shape "
                         f"{tuple(output.shape)}")
    _check_token_rule(tokens, prefix_tokens)
    if mask is not None:
        return _masked_token_units(output, name, tokens, positive_part, prefix_tokens or 0, dtype, mask)
    if tokens == "patches" and output.shape[1] <= prefix_tokens:
        raise ValueError(f"layer {name!r} has {output.shape[1]} tokens, none after the {prefix_tokens} prefix tokens")
    chosen = {"mean": output, "cls": output[:, :1], "patches": output[:, prefix_tokens or 0:],
              "last": output[:, -1:]}[tokens]
    if positive_part:
        chosen = chosen.clamp(min=0)  # a new tensor: a later in-place op on the output cannot reach it
    return chosen.mean(dim=1, dtype=dtype)


def _masked_token_units(output: Tensor, name: str, tokens: str, positive_part: bool, prefix: int,
                        dtype: torch.dtype, mask: Tensor) -> Tensor:
    """The rule over each sample's real tokens only: the k-th real token is the one whose running
    count of real tokens reaches k, wherever the padding lies (right or left)."""
    if mask.shape != output.shape[:2]:
        raise ValueError(f"layer {name!r} has {tuple(output.shape[:2])} (samples, tokens) but the attention mask is "
                         f"{tuple(mask.shape)}: a token layer's mask must cover its tokens")
    real = mask.to(device=output.device, dtype=torch.bool)
    count = real.sum(dim=1)
    if bool((count == 0).any()):
        raise ValueError(f"layer {name!r}: sample {int((count == 0).nonzero()[0])} has no real token in its "
                         "attention mask")
    order = real.cumsum(dim=1)  # k at the k-th real token (1-based)
    if tokens in ("cls", "last"):  # one token per sample: a gather, no (N, T, U) temporary
        at = count if tokens == "last" else torch.ones_like(count)
        index = ((order == at.unsqueeze(1)) & real).to(torch.int8).argmax(dim=1)
        taken = output[torch.arange(output.shape[0], device=output.device), index].to(dtype, copy=True)
        return taken.clamp_(min=0) if positive_part else taken
    values = output.clamp(min=0) if positive_part else output
    chosen = real & (order > prefix) if tokens == "patches" else real
    taken = chosen.sum(dim=1, keepdim=True)
    if bool((taken == 0).any()):
        raise ValueError(f"layer {name!r}: sample {int((taken == 0).nonzero()[0, 0])} has no real token after "
                         f"the {prefix} prefix tokens")
    weights = chosen.to(dtype) / taken.to(dtype)  # (N, T): 1/k on the k chosen tokens, 0 on padding
    return torch.bmm(weights.unsqueeze(1), values.to(dtype)).squeeze(1)


def _attention_mask(args: tuple, kwargs: dict) -> Tensor | None:
    """The (N, T) attention mask a forward call carries: an ``attention_mask`` keyword, or a first
    argument with one (a tokenizer's batch, :class:`~selectivity.data.text.TokenBatch`); else None."""
    mask = kwargs.get("attention_mask")
    if mask is None and args:
        first = args[0]
        mask = first.get("attention_mask") if isinstance(first, Mapping) else getattr(first, "attention_mask", None)
    return mask if isinstance(mask, Tensor) and mask.ndim == 2 else None


def _check_token_rule(tokens: str, prefix_tokens: int | None) -> None:
    if tokens not in TOKEN_REDUCTIONS:
        raise ValueError(f"tokens must be one of {list(TOKEN_REDUCTIONS)}, got {tokens!r}")
    if tokens in ("cls", "patches") and prefix_tokens is None:
        raise ValueError(f"tokens={tokens!r} needs to know how many class (prefix) tokens start the sequence: "
                         "the model declares no num_prefix_tokens")
    if tokens == "cls" and prefix_tokens == 0:
        raise ValueError("tokens='cls' but the model has no class token (num_prefix_tokens is 0)")


def _declares_layouts(model: nn.Module) -> bool:
    """A model that lists its token layers says that its other layers' 3-D outputs are (N, U, length)."""
    return getattr(model, "selectivity_token_layers", None) is not None


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or bool(_ATTENTION_CLASS.search(type(module).__name__))


def _transformer_blocks(model: nn.Module) -> list[str]:
    """Names of the modules that hold an attention module as a direct child."""
    return [n for n, m in model.named_modules() if n and any(_is_attention(c) for c in m.children())]


def _mlp_activations(model: nn.Module, blocks: list[str]) -> list[str]:
    """In each transformer block, the activation modules outside its attention: the MLP's."""
    modules = dict(model.named_modules())
    attention = [n for n, m in modules.items() if n and _is_attention(m)]
    found = []
    for name, module in modules.items():
        inside_block = any(name.startswith(b + ".") for b in blocks)
        inside_attention = any(name == a or name.startswith(a + ".") for a in attention)
        is_activation = not list(module.children()) and bool(_ACTIVATION_CLASS.search(type(module).__name__))
        if inside_block and not inside_attention and is_activation:
            found.append(name)
    return found


def token_layers(model: nn.Module) -> list[str]:
    """The module names whose output is (N, tokens, units): what the model declares, else the rule.

    A model declares them in a ``selectivity_token_layers`` attribute (names or globs, matched
    like :func:`resolve_layers`; an empty list declares none). Otherwise, for a transformer: every
    block holding an attention module (timm's ``Block``, torchvision's ``EncoderBlock``) and every
    module inside it; a model without attention has none.
    """
    declared = getattr(model, "selectivity_token_layers", None)
    names = [n for n, _ in model.named_modules() if n]
    if declared is not None:
        patterns = [declared] if isinstance(declared, str) else list(declared)
        return [n for n in names if any(_glob_match(n, p) if _GLOB_CHARS & set(p) else n == p for p in patterns)]
    blocks = _transformer_blocks(model)
    return [n for n in names if any(n == b or n.startswith(b + ".") for b in blocks)]


def default_layers(model: nn.Module) -> list[str]:
    """The layers a model is measured and regularized at, when the user names none.

    A model may name them itself in a ``selectivity_layers`` attribute (all models of the
    registry do). Otherwise, for a transformer (blocks that hold an attention module): the
    activation module of every block's MLP (timm's ``blocks.*.mlp.act``); for other models:
    every residual block (a module whose class name ends with ``Block`` or ``Bottleneck``)
    that contains no other block.
    """
    named = getattr(model, "selectivity_layers", None)
    if named:
        return list(named)
    mlp = _mlp_activations(model, _transformer_blocks(model))
    if mlp:
        return mlp
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
        tokens (str | None): for token layers, the tokens averaged: ``"mean"`` (all, CLS
            included), ``"cls"``, ``"patches"`` or ``"last"``; None: the model's
            ``selectivity_tokens`` attribute (the trainer sets it from ``regularizer.tokens``),
            else "mean".
        positive_part (bool | None): for token layers, take each token's response as
            max(x, 0) before the mean; None: the model's ``selectivity_positive_part``
            attribute, else True.

    After each forward pass of ``model``, ``probe.activations`` maps layer name to a (N, U)
    tensor, in the order of ``probe.layers``; ``probe.layouts`` says how each was reduced
    (``"tokens"`` or ``"channels"``, see :func:`token_layers`). Use it as a context manager,
    or call :meth:`close`, to remove the hooks.

    Token layers read only the real tokens of each sample (see the module docstring): the probe
    takes the attention mask (N, T) of each pass from the call, ``model(input_ids=...,
    attention_mask=...)`` or ``model(batch)`` with a batch that has an ``attention_mask``, or from
    :meth:`set_token_mask` called just before the pass (it then holds for that pass only).
    ``probe.token_mask`` is the mask of the last pass (None: every token real).

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

    def __init__(self, model: nn.Module, layers: LayerSpec = None, *, detach: bool = True, tokens: str | None = None,
                 positive_part: bool | None = None):
        self.model = model
        self.layers = resolve_layers(model, layers)
        self.detach = detach
        marked = set(token_layers(model))
        self.layouts = {n: "tokens" if n in marked else ("channels" if _declares_layouts(model) else None)
                        for n in self.layers}
        self.tokens = tokens if tokens is not None else getattr(model, "selectivity_tokens", "mean")
        self.positive_part = bool(positive_part if positive_part is not None
                                  else getattr(model, "selectivity_positive_part", True))
        self.prefix_tokens = getattr(model, "num_prefix_tokens", None)
        on_tokens = [n for n in self.layers if self.layouts[n] == "tokens"]
        if on_tokens:
            _check_token_rule(self.tokens, self.prefix_tokens)
            if self.positive_part:
                shown = on_tokens if len(on_tokens) <= 3 else [*on_tokens[:3], f"... ({len(on_tokens)} in all)"]
                warnings.warn(POSITIVE_PART_WARNING.format(layers=", ".join(shown), tokens=_TOKENS_SAID[self.tokens]),
                              RuntimeWarning, stacklevel=2)
        self.enabled = True
        self.token_mask: Tensor | None = None
        self._next_mask: Tensor | None = None
        self.activations: dict[str, Tensor] = {}
        self._calls: dict[str, int] = {}
        self._warned: set[tuple[str, str]] = set()
        modules = dict(model.named_modules())
        self._handles = [model.register_forward_pre_hook(self._start_pass, with_kwargs=True)]
        try:
            for name in self.layers:
                self._handles.append(modules[name].register_forward_hook(self._hook_for(name)))
        except BaseException:
            self.close()
            raise

    def _start_pass(self, module: nn.Module, args, kwargs) -> None:
        if self._capturing():
            self.clear()
        told, self._next_mask = self._next_mask, None
        self.token_mask = told if told is not None else _attention_mask(args, kwargs)

    def set_token_mask(self, mask: Tensor | None) -> None:
        """The attention mask (N, T) of the next forward pass (nonzero: a real token), for a model
        whose call does not carry it as ``attention_mask``; it holds for that one pass."""
        if mask is not None and (not isinstance(mask, Tensor) or mask.ndim != 2):
            raise ValueError(f"an attention mask is a (samples, tokens) tensor, got "
                             f"{tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}")
        self._next_mask = mask

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
                    self.activations[name] = self._reduce(output.detach(), name)
            else:
                self.activations[name] = self._reduce(output, name)

        return hook

    def _reduce(self, output: Tensor, name: str) -> Tensor:
        mask = self.token_mask if self.layouts[name] == "tokens" else None
        return unit_activations(output, name, self.layouts[name], tokens=self.tokens,
                                positive_part=self.positive_part, prefix_tokens=self.prefix_tokens, mask=mask)

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
