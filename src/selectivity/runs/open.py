"""Open a trained run: its config, its model with verified weights, and the images it was tested on.

    run = open_run("runs/demo/alpha-1_seed0")           # final weights (or the last checkpoint)
    logits = run.model(run.test.images[:8].float() / 255)
    run.config.regularizer.alpha, run.test.num_classes, run.device

Every command that evaluates a run (measure, robustness, analyze, compare) opens it here, and so
can a notebook: one place decides which weights a run has, checks their checksum and that they fit
the architecture its config names, and picks its test images (``data.test_limit``), so that what
is measured is what training evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import Config, load_config
from ..data import DatasetSplit, limit_test, load_split
from ..data.text import is_text_source
from .build import build_model, load_texts, resolve_device
from .files import RunError
from .paths import RunPaths
from .tensors import load_tensors

__all__ = ["OpenRun", "open_run", "load_run_model"]


@dataclass(frozen=True)
class OpenRun:
    """A run opened for evaluation.

    Attributes:
        paths (RunPaths): the run directory's files.
        config (Config): its config.yaml.
        model (nn.Module): its network in eval mode on ``device``, with the weights of ``weights``.
        data (DatasetSplit): the images to evaluate on: by default the run's own test images
            (``data.test_limit`` of its test split, as training evaluated them); a run trained on
            labelled text gets a :class:`~selectivity.data.text.TextSplit`, tokenized as in training.
        device (torch.device): where the model is.
        weights (Path): weights.safetensors, or the last checkpoint of an unfinished run.
    """

    paths: RunPaths
    config: Config
    model: nn.Module
    data: DatasetSplit
    device: torch.device
    weights: Path

    @property
    def test(self) -> DatasetSplit:
        """The images the run is evaluated on (an alias of ``data`` that reads as intended)."""
        return self.data


def _config(paths: RunPaths) -> Config:
    if not paths.config.exists():
        raise RunError(f"{paths.root} is not a run directory (no config.yaml)")
    return load_config(paths.config)


def load_run_model(run_dir: str | Path, data_split: DatasetSplit) -> tuple[Config, nn.Module]:
    """(config, the run's model with its final weights or its last checkpoint's, in eval mode) for
    ``data_split``'s classes and normalization; a weights file that does not fit is a RunError."""
    paths = RunPaths(Path(run_dir))
    config = _config(paths)
    model = build_model(config, data_split, start_weights=False)  # the run's own weights follow
    source = paths.weights if paths.weights.exists() else paths.checkpoint
    if not source.exists():
        raise RunError(f"{paths.root} has no weights yet (neither weights.safetensors nor a checkpoint)")
    tensors, _ = load_tensors(source)  # the checksum each file records is verified here
    state = {k.removeprefix("model."): v for k, v in tensors.items() if source == paths.weights or k.startswith("model.")}
    own = model.state_dict()  # a class count that differs shows as the output layer's first dimension
    n = data_split.num_classes
    outputs = [k for k, v in state.items() if k in own and v.ndim and own[k].shape[0] == n != v.shape[0]]
    if outputs:
        raise RunError(f"{paths.root} was trained on {state[outputs[0]].shape[0]} classes but the data "
                       f"{data_split.name!r} has {n}; measure on data with the run's classes")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise RunError(f"{source} does not fit the model of {paths.config}: {str(err).splitlines()[0]}") from None
    return config, model.eval()


def open_run(run_dir: str | Path, *, device: str | torch.device | None = None, data: str | None = None,
             split: str = "test", progress: bool = False) -> OpenRun:
    """Open a run directory for evaluation.

    Args:
        run_dir: the run directory (it holds config.yaml).
        device: where to put the model; None: the run's ``train.device`` (``auto``: CUDA when present).
        data: a dataset source to evaluate on instead of the run's own (same classes).
        split: the split of ``data`` (or of the run's dataset) to load. Default: "test".
        progress: show the decoding progress of a dataset seen for the first time.

    The run's own test split is cut to ``data.test_limit`` images, as training evaluated it, so
    that mean SI and accuracy measured on it equal final.json's.
    """
    paths = RunPaths(Path(run_dir))
    config = _config(paths)
    if is_text_source(data or config.data.source):  # a text run: its texts, tokenized as training did
        (images,) = load_texts(config, (split,), data)
    else:  # the model's normalization comes with its weights: no need to decode the train split
        images = load_split(data or config.data.source, split, cache_dir=config.data.cache_dir, progress=progress,
                            stats_from=split)
    if data is None and split == "test":
        images = limit_test(images, config.data.test_limit)
    config, model = load_run_model(run_dir, images)
    where = resolve_device(config.train.device if device is None else str(device))
    weights = paths.weights if paths.weights.exists() else paths.checkpoint
    return OpenRun(paths=paths, config=config, model=model.to(where), data=images, device=where, weights=weights)
