"""The model zoo: a registry from names to builders, ``create_model`` and ``list_models``.

A registered name is its builder's function name, so ``grep "def resnet20"`` finds it.
Every model takes images in [0, 1] (its first module is a :class:`Normalize`) and lists
the module names the selectivity tools use by default in ``model.selectivity_layers``.

=============  =====  ===========================================  ===================
name           input  architecture                                 selectivity layers
=============  =====  ===========================================  ===================
resnet20       32 px  CIFAR ResNet-20 (He et al. 2016)             9 residual blocks
resnet18       64 px  Tiny ImageNet ResNet-18 (Leavitt & Morcos)   8 residual blocks
resnet50       64 px  Tiny ImageNet ResNet-50 (Leavitt & Morcos)   16 residual blocks
vgg16_bn       32 px  CIFAR VGG16-BN (Simonyan & Zisserman 2015)   13 conv ReLUs
resnet_demo    32 px  three-block ResNet for CPU demos (no paper)  3 residual blocks
vit_demo       32 px  four-block ViT, patch 4, for CPU demos       4 MLP activations
=============  =====  ===========================================  ===================

A model of one's own is named ``"package.module:factory"``: the module is imported and
``factory(num_classes=..., **kwargs)`` is called. The zoos' models are named
``"timm:NAME"`` and ``"torchvision:NAME"`` (optional extras, see :mod:`.zoo`); their
weights come from a local safetensors file, never from the network. Hugging Face models are
named ``"hf:DIR"`` (a local folder, or ``hf:ORG/NAME`` in the local cache; see :mod:`.hf`).
"""

import difflib
import importlib
import inspect
import numbers
import os
import sys
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from torch import nn

from .layers import CIFAR10_MEAN, CIFAR10_STD, TINY_IMAGENET_MEAN, TINY_IMAGENET_STD, Normalize
from .resnet import ResNet, resnet18, resnet20, resnet50, resnet_demo
from .vgg import VGG, vgg16_bn
from .vit import VisionTransformer, vit_demo
from .hf import hf_builder, is_hf_name
from .zoo import is_zoo_name, zoo_builder

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "MODELS",
    "TINY_IMAGENET_MEAN",
    "TINY_IMAGENET_STD",
    "VGG",
    "VisionTransformer",
    "Normalize",
    "accepts_keyword",
    "ResNet",
    "create_model",
    "list_models",
    "resnet18",
    "resnet20",
    "resnet50",
    "resnet_demo",
    "vgg16_bn",
    "vit_demo",
]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet20": resnet20,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vgg16_bn": vgg16_bn,
    "resnet_demo": resnet_demo,
    "vit_demo": vit_demo,
}


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell-style glob (case-sensitive).

    Example::

        >>> list_models("resnet*")
        ['resnet18', 'resnet20', 'resnet50', 'resnet_demo']
    """
    return sorted(name for name in MODELS if fnmatchcase(name, pattern))


def create_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a registered model, or a model of one's own from ``"package.module:factory"``.

    Keyword arguments whose value is ``None`` are dropped, so an unset option keeps the
    builder's default.

    Args:
        name (str): a name from :func:`list_models`, ``"timm:NAME"`` or ``"torchvision:NAME"``
            (see :mod:`.zoo`), or ``"package.module:factory"`` where ``factory`` (dotted
            attributes allowed) is a callable that takes ``num_classes=`` and returns a
            ``torch.nn.Module``.
        num_classes (int): number of classes, at least 2.
        **kwargs: passed on to the builder (e.g. ``shortcut="B"``, ``mean=``, ``std=``).

    Raises:
        ValueError: unknown name (the message lists the registered names and close
            matches), a zoo that is not installed or has no such model, a factory that cannot be imported, is not callable, does not take
            ``num_classes`` or the given arguments, or returns something other than a
            module; ``num_classes`` not an integer >= 2.

    Example::

        >>> model = create_model("resnet20", num_classes=10, shortcut=None)
        >>> model.selectivity_layers[:3]
        ('layer1.0', 'layer1.1', 'layer1.2')
    """
    is_integer = isinstance(num_classes, numbers.Integral) and not isinstance(num_classes, bool)
    if not is_integer or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    num_classes = int(num_classes)
    builder = _builder(name)
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    _check_arguments(name, builder, num_classes, kwargs)
    try:
        model = builder(num_classes=num_classes, **kwargs)
    except (ValueError, TypeError):
        raise
    except Exception as err:  # a factory of one's own that fails: one line naming it and its message
        first = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(f"the factory of {name!r} raised {type(err).__name__}: {first[:300]}") from err
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {name!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def accepts_keyword(name: str, keyword: str) -> bool:
    """Whether the builder of ``name`` takes ``keyword`` (or ``**kwargs``): a model of one's own
    need not take the dataset's ``mean`` and ``std``, and is then given images in [0, 1]."""
    builder = _builder(name)
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or (p.name == keyword and p.kind is not p.VAR_POSITIONAL) for p in params)


def _builder(name: str) -> Callable[..., nn.Module]:
    if is_hf_name(name):
        return hf_builder(name)
    if is_zoo_name(name):
        return zoo_builder(name)
    return _load_factory(name) if ":" in name else _registered(name)


def _registered(name: str) -> Callable[..., nn.Module]:
    if name in MODELS:
        return MODELS[name]
    close = difflib.get_close_matches(name, MODELS, n=3)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"unknown model {name!r}.{hint} Registered models: {', '.join(list_models())}; "
        "a zoo's as 'timm:NAME' or 'torchvision:NAME'; a Hugging Face folder as 'hf:DIR'; or your own as "
        "'package.module:factory'."
    )


def _import_from_here(module_name: str):
    """Import a module from sys.path, else from the current directory: a console script does not
    put the directory it runs in on sys.path, where a user's own model file usually lies."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        here = os.getcwd()
        if here in sys.path or not (err.name and module_name.startswith(err.name)):
            raise
        sys.path.append(here)
        return importlib.import_module(module_name)


def _load_factory(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"model {spec!r} should read 'package.module:factory'")
    try:
        factory: Any = _import_from_here(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r} for model {spec!r}: {err}") from err
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise ValueError(
                f"module {module_name!r} has no attribute {attribute!r} (model {spec!r})"
            )
        factory = getattr(factory, part)
    if not callable(factory):
        raise ValueError(
            f"model {spec!r} is not callable (it is a {type(factory).__name__}); "
            "name a function or class that returns a torch.nn.Module"
        )
    return factory


def _check_arguments(
    name: str, builder: Callable[..., nn.Module], num_classes: int, kwargs: dict[str, Any]
) -> None:
    """Raise ValueError if ``builder(num_classes=..., **kwargs)`` would not bind."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # no introspectable signature: let the call decide
        return
    try:
        signature.bind(num_classes=num_classes, **kwargs)
    except TypeError as err:
        params = signature.parameters.values()
        takes_num_classes = any(
            p.kind is p.VAR_KEYWORD
            or (p.name == "num_classes" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
            for p in params
        )
        if not takes_num_classes:
            raise ValueError(
                f"model {name!r} must accept a num_classes keyword argument; "
                f"its signature is {signature}"
            ) from None
        raise ValueError(
            f"cannot build model {name!r} with arguments {sorted(kwargs)}: {err}; "
            f"its signature is {signature}"
        ) from None
