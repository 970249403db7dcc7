"""Labelled text: read from CSV, JSON Lines or a Hugging Face ``datasets`` folder, tokenized by
the model's own tokenizer, batched by length.

    texts = read_text_set("reviews.csv", text_column="text", label_column="label")
    texts = tokenize(texts, tokenizer, max_length=512, truncation="none")
    for index in length_batches(texts.lengths, 64):    # indices of texts of similar length
        batch = texts.batch(index)                      # TokenBatch: input_ids, attention_mask (B, T)

- **Sources**: a ``.csv`` file (read as text: every cell a string, none taken for a number or a
  missing value), a ``.jsonl`` file (one JSON object per line), or a folder saved by
  ``datasets``' ``save_to_disk`` (a ``Dataset``, or a ``DatasetDict`` and a split; needs
  ``datasets``). For training, a folder holding ``train.csv`` and ``test.csv`` (or ``.jsonl``),
  a ``DatasetDict`` with both splits, or one file, of which a fixed 20% of each class (drawn
  with seed 0) is the test split (:func:`load_text_split`).
- **Classes** are the sorted distinct labels (as numbers when every label is an integer, so 2
  comes before 10), named by their text.
- **Checks**, each a one-line :class:`DatasetError` before any work: the columns exist (the error
  lists those there are), no text is empty or blank, no label is missing, there are at least
  two classes, and (in :func:`tokenize`) no text has more tokens than the maximum unless a
  truncation rule is given: ``"right"`` keeps the first tokens, ``"left"`` the last.
- **Batches** (:func:`length_batches`) gather texts of similar length, so padding costs little;
  padding goes on the right and the attention mask marks it, so no text's units depend on the
  batch it is in (:mod:`selectivity.core.probe` reads only the real tokens).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import DatasetError

__all__ = ["TEXT_SUFFIXES", "TRUNCATION_RULES", "TextLoader", "TextSplit", "TokenBatch", "is_text_source",
           "length_batches", "load_text_split", "make_loader", "read_text_set", "tokenize"]

TEXT_SUFFIXES = (".csv", ".jsonl")
TRUNCATION_RULES = ("none", "right", "left")
TEST_FRACTION = 0.2  # of each class, when one file holds both splits


@dataclass(frozen=True)
class TokenBatch:
    """A batch of tokenized texts: ``input_ids`` and ``attention_mask`` int64 (B, T), padded on the
    right (mask 0). An ``hf:`` model takes it whole (``model(batch)``), and a probe reads its mask."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def to(self, device) -> "TokenBatch":
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device))

    @property
    def shape(self) -> torch.Size:
        return self.input_ids.shape

    def __len__(self) -> int:
        return self.input_ids.shape[0]


@dataclass(repr=False, eq=False)
class TextSplit:
    """Labelled texts: ``texts`` (N strings), ``labels`` int64 (N,), ``classes`` (names, index = label).

    Attributes:
        name, source, split: where they come from (the file or folder name, its path, the split).
        checksum (str): sha256 of the texts and their label names: what identifies the data.
        input_ids (list[Tensor] | None): each text's token ids after :func:`tokenize`.
        tokenization (dict): the tokenizer, the maximum length, the truncation rule and how many
            texts it cut, as :func:`tokenize` recorded them.
        embeddings (Tensor | None): (N, D) rows that follow the texts through every subset.
    """

    texts: list[str]
    labels: torch.Tensor
    classes: list[str]
    name: str
    source: str
    split: str = "train"
    checksum: str = ""
    input_ids: list[torch.Tensor] | None = None
    tokenization: dict = field(default_factory=dict)
    pad_id: int = 0
    embeddings: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return (f"TextSplit(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"num_classes={self.num_classes}, tokenized={self.input_ids is not None})")

    @property
    def lengths(self) -> torch.Tensor:
        """int64 (N,): each text's number of tokens (tokenized splits only)."""
        self._need_tokens()
        return torch.tensor([len(t) for t in self.input_ids], dtype=torch.int64)

    def _need_tokens(self) -> None:
        if self.input_ids is None:
            raise ValueError(f"{self!r} is not tokenized yet: call tokenize(split, tokenizer) first")

    def subset(self, keep: torch.Tensor | Sequence[int]) -> "TextSplit":
        """The texts at ``keep`` (indices), in that order, with their labels, tokens and embedding rows."""
        keep = torch.as_tensor(keep, dtype=torch.int64)
        index = keep.tolist()
        return dataclasses.replace(
            self, texts=[self.texts[i] for i in index], labels=self.labels[keep],
            input_ids=None if self.input_ids is None else [self.input_ids[i] for i in index],
            embeddings=None if self.embeddings is None else self.embeddings[keep])

    def batch(self, index: torch.Tensor | Sequence[int]) -> TokenBatch:
        """The texts at ``index`` as one batch, padded on the right to the longest of them."""
        self._need_tokens()
        rows = [self.input_ids[i] for i in torch.as_tensor(index).tolist()]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.int64)
        mask = torch.zeros((len(rows), width), dtype=torch.int64)
        for i, r in enumerate(rows):  # B short copies; the model's forward is what costs
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return TokenBatch(ids, mask)


def _checksum(texts: list[str], names: list[str]) -> str:
    payload = json.dumps([texts, names], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _class_order(names: list[str]) -> list[str]:
    """Sorted distinct labels: as integers when every one is, else as text."""
    distinct = set(names)
    try:
        return sorted(distinct, key=lambda v: (int(v), v))
    except ValueError:
        return sorted(distinct)


def is_datasets_folder(path: Path) -> bool:
    """A folder written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict)."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def is_text_source(source: str | Path) -> bool:
    """Whether ``source`` is labelled text: a .csv or .jsonl file, a datasets folder, or a folder
    holding train.csv or train.jsonl."""
    path = Path(source).expanduser()
    if path.suffix.lower() in TEXT_SUFFIXES:
        return True
    return is_datasets_folder(path) or any((path / f"train{s}").is_file() for s in TEXT_SUFFIXES)


def _read_rows(path: Path, columns: tuple[str, str], split: str | None) -> tuple[list, list, str]:
    """(texts, labels, what) of a file or datasets folder; ``what`` names it in errors."""
    if not path.exists():
        raise DatasetError(f"{path} does not exist; expected a .csv or .jsonl file or a datasets folder")
    if path.is_dir():
        if not is_datasets_folder(path):
            raise DatasetError(f"{path} is a folder but not one saved by datasets (no dataset_dict.json or "
                               "state.json); expected a .csv or .jsonl file or a datasets folder")
        return _read_datasets(path, columns, split)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DatasetError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as err:
            raise DatasetError(f"{path} is not a readable CSV file ({str(err).strip().splitlines()[0]})") from None
        _check_columns(path.name, list(frame.columns), columns)
        return frame[columns[0]].tolist(), frame[columns[1]].tolist(), path.name
    if suffix == ".jsonl":
        texts, labels = [], []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise DatasetError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise DatasetError(f"{path.name} line {number} is not a JSON object") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{path.name} line {number} is not a JSON object")
            _check_columns(f"{path.name} line {number}", list(row), columns)
            texts.append(row[columns[0]])
            labels.append(row[columns[1]])
        return texts, labels, path.name
    raise DatasetError(f"{path}: expected a .csv or .jsonl file or a datasets folder, got {suffix or 'no suffix'}")


def _read_datasets(path: Path, columns: tuple[str, str], split: str | None) -> tuple[list, list, str]:
    try:
        import datasets
    except ModuleNotFoundError:
        raise DatasetError(f"{path} is a datasets folder, which needs datasets: pip install datasets "
                           "(or save it as .csv or .jsonl)") from None
    loaded = datasets.load_from_disk(str(path))
    what = path.name
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        if split is None or split not in loaded:
            wanted = f"split {split!r} is not there" if split else "name one"
            raise DatasetError(f"{path} holds the splits {', '.join(names)}: {wanted} (--split)")
        loaded, what = loaded[split], f"{path.name}[{split}]"
    _check_columns(what, list(loaded.column_names), columns)
    labels = loaded[columns[1]]
    feature = loaded.features.get(columns[1])
    if isinstance(feature, datasets.ClassLabel):  # integer labels with names: keep the names
        labels = [feature.int2str(v) if isinstance(v, int) and v >= 0 else "" for v in labels]
    return list(loaded[columns[0]]), list(labels), what


def _check_columns(what: str, present: list, columns: tuple[str, str]) -> None:
    for role, column in zip(("text", "label"), columns):
        if column not in present:
            raise DatasetError(f"{what} has no {role} column {column!r} (it has {', '.join(map(str, present))}); "
                               f"name it with --{role}-column (data.{role}_column)")


def _label_text(value) -> str | None:
    if value is None or isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _build(texts: list, labels: list, what: str, path: Path, split: str, classes: list[str] | None) -> TextSplit:
    for i, (text, label) in enumerate(zip(texts, labels)):
        if not isinstance(text, str):
            raise DatasetError(f"{what} row {i + 1}: the text is {type(text).__name__} {text!r}, not a string")
        if not text.strip():
            raise DatasetError(f"{what} row {i + 1}: the text is empty; remove the row or give it a text")
        if _label_text(label) is None:
            raise DatasetError(f"{what} row {i + 1}: the label is missing")
    if not texts:
        raise DatasetError(f"{what} has no rows")
    names = [_label_text(v) for v in labels]
    if classes is None:
        classes = _class_order(names)
        if len(classes) < 2:
            raise DatasetError(f"{what} has {len(classes)} class ({classes[0]!r}); selectivity needs at least two "
                               "classes")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise DatasetError(f"{what} has labels {unknown[:5]} that the training split does not: expected one of "
                           f"{classes}")
    return TextSplit(texts=list(texts), labels=torch.tensor([index[n] for n in names], dtype=torch.int64),
                     classes=list(classes), name=path.stem if path.is_file() else path.name, source=str(path),
                     split=split, checksum=_checksum(list(texts), names))


def read_text_set(path: str | Path, text_column: str = "text", label_column: str = "label",
                  split: str | None = None, classes: list[str] | None = None) -> TextSplit:
    """Labelled texts of a .csv or .jsonl file or a datasets folder (``split`` of a DatasetDict), checked.

    ``classes``: the class names to index labels by (a test split takes its training split's);
    None: the sorted distinct labels, at least two.
    """
    path = Path(path).expanduser()
    texts, labels, what = _read_rows(path, (text_column, label_column), split)
    return _build(texts, labels, what, path, split or "all", classes)


def load_text_split(source: str | Path, split: str, text_column: str = "text",
                    label_column: str = "label") -> TextSplit:
    """The ``train`` or ``test`` split of a text source, for training (see the module docstring).

    A test split's labels are indexed by the training split's classes.
    """
    path = Path(source).expanduser()
    files = {s: next((path / f"{s}{x}" for x in TEXT_SUFFIXES if (path / f"{s}{x}").is_file()), None)
             for s in ("train", "test")} if path.is_dir() and not is_datasets_folder(path) else None
    if files is not None:
        if files["train"] is None or files["test"] is None:
            raise DatasetError(f"{path} needs train.csv and test.csv (or .jsonl) for training; it has "
                               f"{', '.join(sorted(p.name for p in path.iterdir())) or 'nothing'}")
        train = read_text_set(files["train"], text_column, label_column)
        return train if split == "train" else read_text_set(files["test"], text_column, label_column,
                                                             classes=train.classes)
    if is_datasets_folder(path) and (path / "dataset_dict.json").is_file():
        train = read_text_set(path, text_column, label_column, split="train")
        return train if split == "train" else read_text_set(path, text_column, label_column, split="test",
                                                             classes=train.classes)
    whole = read_text_set(path, text_column, label_column)
    test = _held_out(whole.labels)
    keep = test if split == "test" else torch.from_numpy(np.setdiff1d(np.arange(len(whole)), test.numpy()))
    part = whole.subset(keep)
    names = [whole.classes[i] for i in part.labels.tolist()]
    return dataclasses.replace(part, split=split, checksum=_checksum(part.texts, names))


def _held_out(labels: torch.Tensor) -> torch.Tensor:
    """A fixed 20% of each class (rounded, at least one), drawn with seed 0; sorted indices."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    chosen = []
    for c in labels.unique().tolist():
        members = order[labels[order] == c]
        chosen.append(members[: max(1, round(TEST_FRACTION * len(members)))])
    return torch.cat(chosen).sort().values


def tokenize(split: TextSplit, tokenizer, max_length: int | None = None, truncation: str = "none",
             model_max_length: int | None = None) -> TextSplit:
    """``split`` with each text's token ids from ``tokenizer`` (special tokens included).

    Args:
        max_length: the most tokens a text may have; None: ``model_max_length`` (the model's).
        truncation: ``"none"`` (a longer text is an error naming it), ``"right"`` (keep the first
            ``max_length`` tokens) or ``"left"`` (keep the last).
        model_max_length: the model's own maximum, which ``max_length`` may not exceed.

    The rule, the maximum and how many texts were cut are in ``tokenization`` of the result.
    """
    if truncation not in TRUNCATION_RULES:
        raise DatasetError(f"truncation must be one of {list(TRUNCATION_RULES)}, got {truncation!r}")
    limit = max_length or model_max_length
    if limit is None or limit < 2:
        raise DatasetError(f"the maximum length must be at least 2 tokens, got {limit}")
    if model_max_length is not None and limit > model_max_length:
        raise DatasetError(f"max length {limit} exceeds the model's maximum of {model_max_length} tokens")
    ids = tokenizer(split.texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    long = [i for i, row in enumerate(ids) if len(row) > limit]
    if long and truncation == "none":
        first = long[0]
        raise DatasetError(f"{split.name} row {first + 1} has {len(ids[first])} tokens, more than the maximum of "
                           f"{limit} ({len(long)} text(s) in all); give a truncation rule: --truncation (data.truncation) "
                           "right (keep the first tokens) or left (keep the last)")
    if long:
        side = tokenizer.truncation_side
        tokenizer.truncation_side = truncation
        try:
            cut = tokenizer([split.texts[i] for i in long], add_special_tokens=True, truncation=True,
                            max_length=limit)["input_ids"]
        finally:
            tokenizer.truncation_side = side
        for i, row in zip(long, cut):
            ids[i] = row
    empty = [i for i, row in enumerate(ids) if len(row) == 0]
    if empty:
        raise DatasetError(f"{split.name} row {empty[0] + 1}: the text gives no token")
    record = {"tokenizer": type(tokenizer).__name__, "max_length": int(limit), "truncation": truncation,
              "truncated": len(long), "model_max_length": model_max_length}
    return dataclasses.replace(split, input_ids=[torch.tensor(r, dtype=torch.int64) for r in ids],
                               tokenization=record, pad_id=int(tokenizer.pad_token_id))


def length_batches(lengths: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Indices of ``batch_size`` texts at a time, shortest first (stable): similar lengths pad little."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = torch.argsort(lengths, stable=True)
    return list(order.split(batch_size))


class TextLoader:
    """Batches (TokenBatch, y) of a tokenized split on ``device``; (TokenBatch, y, e) with ``embeddings``.

    The text counterpart of :class:`~selectivity.data.DeviceLoader`, with the same contract: each
    ``iter(loader)`` is one epoch, and its order depends only on (seed, epoch), so a resumed run
    sees the same batches. Shuffled epochs draw a permutation, cut it into chunks of 50 batches,
    sort each chunk by length and cut it into batches, then shuffle the batches: batches of
    similar length, in random order. ``batch_size`` is the global batch: under data parallelism
    every rank draws the same batches and keeps its slice (texts [rank * B/W, (rank+1) * B/W)),
    so step k of a W-process run sees the texts of step k of one process. Without shuffle, the
    batches are the split's texts sorted by length (:func:`length_batches`).

    ``labels``, ``device`` and ``dtype`` are there for :func:`~selectivity.analysis.evaluation.evaluate`.
    """

    CHUNK = 50  # batches sorted by length together

    def __init__(self, split: TextSplit, batch_size: int, device: str | torch.device = "cpu", shuffle: bool = True,
                 drop_last: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1,
                 dtype: torch.dtype = torch.float32, embeddings: torch.Tensor | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} must divide by the {world_size} processes")
        split._need_tokens()
        self.split = split
        self.device = torch.device(device)
        self.labels = split.labels.to(self.device)
        self.lengths = split.lengths
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.rank, self.world_size, self.dtype = rank, world_size, dtype
        self.embeddings = None if embeddings is None else embeddings.to(self.device, dtype)
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int) -> list[torch.Tensor]:
        """The global batches of epoch ``epoch`` (indices into the split)."""
        n = len(self.labels)
        if not self.shuffle:
            batches = length_batches(self.lengths, self.batch_size)
            return [b for b in batches if len(b) == self.batch_size] if self.drop_last else batches
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        order = torch.randperm(n, generator=g)
        if self.drop_last:
            order = order[: len(self) * self.batch_size]
        batches = []
        for chunk in order.split(self.CHUNK * self.batch_size):
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches.extend(chunk.split(self.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]

    def __iter__(self) -> Iterator[tuple]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        for index in self.batches(epoch):
            if self.world_size > 1:
                index = index.tensor_split(self.world_size)[self.rank]
            x = self.split.batch(index).to(self.device)
            y = self.labels[index.to(self.device)]
            yield (x, y) if self.embeddings is None else (x, y, self.embeddings[index.to(self.device)])


def make_loader(split, batch_size: int, device, **options):
    """A :class:`TextLoader` for a :class:`TextSplit` (image-only options such as ``augment`` and
    ``channels_last`` do not apply and are dropped; text batches are of at most 64 texts for
    evaluation-sized requests), else a :class:`~selectivity.data.DeviceLoader` with every option."""
    from .loader import DeviceLoader

    if not isinstance(split, TextSplit):
        return DeviceLoader(split, batch_size, device, **options)
    kept = {k: v for k, v in options.items() if k in ("shuffle", "drop_last", "seed", "rank", "world_size", "dtype",
                                                        "embeddings")}
    if not kept.get("shuffle", True):
        batch_size = min(batch_size, 64)  # evaluation: many short batches pad less than one long one
    return TextLoader(split, batch_size, device, **kept)
