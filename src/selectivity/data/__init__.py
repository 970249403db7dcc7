"""Data: dataset sources -> uint8 cache -> device loader.

    split = load_split("demo", "train")                     # or a CIFAR / Tiny ImageNet / ImageFolder path
    loader = DeviceLoader(split, 512, device="cuda", augment=Augment(crop_padding=4, flip=True))
    for x, y in loader:                                     # x float in [0, 1]; normalize in the model
        ...

Modules: :mod:`.sources` (layouts), :mod:`.cache` (decode once, safetensors + JSON manifest),
:mod:`.loader` and :mod:`.augment` (on the device), :mod:`.bundled` (the demo set),
:mod:`.safe_pickle` (CIFAR pickles without code execution), :mod:`.subsets` (per-class and
test-image subsets).
"""

from .augment import Augment, AugmentParams, crop_flip, pad_images
from .bundled import demo_path
from .cache import DatasetSplit, channel_stats, default_cache_dir, load_split
from .errors import DatasetError
from .loader import DeviceLoader, shard_split
from .safe_pickle import RestrictedUnpickler
from .sources import SourceInfo, describe_source
from .subsets import limit_test, take_per_class

__all__ = [
    "Augment",
    "AugmentParams",
    "DatasetError",
    "DatasetSplit",
    "DeviceLoader",
    "shard_split",
    "RestrictedUnpickler",
    "SourceInfo",
    "channel_stats",
    "crop_flip",
    "default_cache_dir",
    "demo_path",
    "describe_source",
    "limit_test",
    "load_split",
    "pad_images",
    "take_per_class",
]
