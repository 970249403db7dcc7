"""Models from the zoos researchers already use: ``timm:NAME`` and ``torchvision:NAME``.

Both are optional extras (``pip install 'selectivity[timm]'``, ``'selectivity[torchvision]'``), and
torchvision must be the build made for the installed torch: PyPI's default torchvision is a CUDA
build that replaces or breaks a CPU torch, so install the torchvision that matches your torch first
(``make test-zoo`` builds one such environment). They are imported only when such a name is built;
nothing else in the project imports them.

- ``timm:vit_tiny_patch16_224`` is ``timm.create_model(name, pretrained=False, num_classes=K, **kwargs)``;
  ``torchvision:resnet18`` is ``torchvision.models.get_model(name, weights=None, num_classes=K, **kwargs)``.
- Weights are never fetched: they come from a local ``.safetensors`` file (``--weights FILE`` for
  ``measure``, ``model.weights: FILE`` for ``train``). Asking the zoo for its pretrained weights
  (``pretrained``, ``weights``, ``checkpoint_path``, ``pretrained_cfg_overlay``) is an error that
  says so, before any download could start.
- ``mean`` and ``std``, when given, normalize the [0, 1] input in a forward pre-hook: the state
  dict stays the zoo's own, so its weights files load as they are. The trainer passes the data's
  statistics, as it does to the registry's models.
- Facts the selectivity tools read are set on the model: ``input_size`` (timm's image size, or
  torchvision's ViT ``image_size``) and ``num_prefix_tokens`` (torchvision's ViT: 1, its class
  token; timm sets its own). The layers and their layout follow the default rules of
  :mod:`selectivity.core.probe` (transformers: every MLP activation; CNNs: residual blocks).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["ZOOS", "is_zoo_name", "zoo_builder"]

# Zoo prefix -> the package to import; the prefix is also the name of the pip extra.
ZOOS = {"timm": "timm", "torchvision": "torchvision"}
# Keyword arguments that would make a zoo fetch (or unpickle) weights.
_FETCHING = {
    "timm": ("pretrained", "checkpoint_path", "pretrained_cfg_overlay", "pretrained_cfg"),
    "torchvision": ("weights", "pretrained", "weights_backbone"),
}


def is_zoo_name(name: str) -> bool:
    """Whether ``name`` reads ``timm:NAME`` or ``torchvision:NAME``."""
    prefix, sep, _ = name.partition(":")
    return bool(sep) and prefix in ZOOS


def _import_zoo(zoo: str, name: str):
    try:
        return importlib.import_module(ZOOS[zoo])
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in ("timm", "torchvision"):
            missing = err.name.split(".")[0]
            raise ValueError(f"model {name!r} needs {missing}, which is not installed: pip install "
                             f"'selectivity[{zoo}]', with the torchvision built for the installed torch "
                             f"{torch.__version__} (`make test-zoo` builds such an environment)") from None
        raise ValueError(f"model {name!r}: {zoo} cannot be imported ({type(err).__name__}: {err})") from None
    except Exception as err:  # noqa: BLE001 - a broken install raises anything at import
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(
            f"model {name!r}: {zoo} is installed but cannot be imported ({type(err).__name__}: {first}); its "
            f"torchvision must be the build made for this torch {torch.__version__}"
        ) from None


def _has_model(zoo: str, module, model_name: str) -> bool:
    if zoo == "timm":
        return bool(module.is_model(model_name))  # also "NAME.TAG", a name with its weight tag
    return model_name in module.models.list_models()


def _names(zoo: str, module) -> list[str]:
    if zoo == "timm":
        return list(module.list_models())
    return list(module.models.list_models())


def zoo_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of ``timm:NAME`` or ``torchvision:NAME``: ``builder(num_classes, mean=None, std=None, **kwargs)``.

    Raises:
        ValueError: the zoo is not installed (the message gives the pip command) or does not
            import, or it has no model ``NAME`` (the message gives close names).
    """
    zoo, _, model_name = name.partition(":")
    if zoo not in ZOOS or not model_name:
        raise ValueError(f"model {name!r} should read 'timm:NAME' or 'torchvision:NAME'")
    module = _import_zoo(zoo, name)
    if not _has_model(zoo, module, model_name):
        known = _names(zoo, module)
        close = difflib.get_close_matches(model_name, known, n=3)
        hint = f" Did you mean {' or '.join(repr(f'{zoo}:{c}') for c in close)}?" if close else ""
        raise ValueError(f"{zoo} has no model {model_name!r} (model {name!r}).{hint} "
                         f"{zoo} lists {len(known)} models" + (" (timm.list_models())" if zoo == "timm" else
                                                               " (torchvision.models.list_models())"))

    def build(num_classes: int, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
              **kwargs: Any) -> nn.Module:
        fetching = sorted(k for k in _FETCHING[zoo] if kwargs.get(k) not in (None, False))
        if fetching:
            raise ValueError(
                f"model {name!r}: {', '.join(fetching)} would fetch weights, and nothing is downloaded here: save "
                "the weights to a .safetensors file and pass it (measure --weights FILE, or model.weights: FILE)"
            )
        kwargs = {k: v for k, v in kwargs.items() if k not in _FETCHING[zoo]}
        try:
            if zoo == "timm":
                model = module.create_model(model_name, pretrained=False, num_classes=num_classes, **kwargs)
            else:
                model = module.models.get_model(model_name, weights=None, num_classes=num_classes, **kwargs)
        except (TypeError, ValueError, AssertionError) as err:
            raise ValueError(f"cannot build model {name!r} with arguments {sorted(kwargs)}: "
                             f"{type(err).__name__}: {err}") from None
        _describe(model, zoo)
        if mean is not None or std is not None:
            _normalize_input(model, mean, std)
        return model

    build.__name__ = f"{zoo}_{model_name}"
    build.__qualname__ = build.__name__
    return build


def _describe(model: nn.Module, zoo: str) -> None:
    """Set ``input_size`` and ``num_prefix_tokens`` where the zoo knows them."""
    if getattr(model, "input_size", None) is None:
        size = None
        if zoo == "timm":
            img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
            if img_size is not None:
                size = (3, *tuple(img_size))
            else:
                size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
        elif isinstance(getattr(model, "image_size", None), int):  # torchvision's VisionTransformer
            size = (3, model.image_size, model.image_size)
        if size is not None:
            model.input_size = tuple(int(v) for v in size)
    if zoo == "torchvision" and hasattr(model, "class_token") and not hasattr(model, "num_prefix_tokens"):
        model.num_prefix_tokens = 1


class _InputNormalization:
    """A forward pre-hook: (x - mean) / std per channel, on the device and dtype of x."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        x, *rest = args
        return ((x - self.mean.to(x)) / self.std.to(x), *rest)


def _normalize_input(model: nn.Module, mean, std) -> None:
    if mean is None or std is None:
        raise ValueError("give both mean and std (or neither) to normalize a zoo model's input")
    mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
    if mean_t.numel() != std_t.numel() or not bool((std_t > 0).all()):
        raise ValueError(f"mean and std need one value per channel and positive stds, got {mean} and {std}")
    model.register_forward_pre_hook(_InputNormalization(mean_t.tolist(), std_t.tolist()))
    model.input_normalization = (tuple(mean_t.tolist()), tuple(std_t.tolist()))
