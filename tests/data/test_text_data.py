"""Labelled text: the same texts as CSV, JSON Lines or a datasets folder read alike; classes, splits,
truncation and batches by length, checked against what the files hold."""

import json
import sys
from pathlib import Path

import pytest
import torch

from selectivity.data import DatasetError
from selectivity.data.text import TextLoader, length_batches, load_text_split, read_text_set, tokenize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

TEXTS = ["one good", "two bad things", "ten, fine", "a \"quoted\" text, with commas", "NA", "null"]
LABELS = [10, 2, 2, 10, 1, 1]  # sorted as numbers: 1, 2, 10 (as text "10" would come before "2")


def write_csv(path, texts=TEXTS, labels=LABELS, header=("text", "label")):
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(zip(texts, labels))
    return path


def test_csv_jsonl_and_a_datasets_folder_read_alike(tmp_path):
    csv_set = read_text_set(write_csv(tmp_path / "t.csv"))
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("".join(json.dumps({"body": t, "y": y}) + "\n" for t, y in zip(TEXTS, LABELS)))
    jsonl_set = read_text_set(jsonl, text_column="body", label_column="y")
    for got in (csv_set, jsonl_set):
        assert got.texts == TEXTS  # "NA" and "null" stay texts, never missing values
        assert got.classes == ["1", "2", "10"]
        assert got.labels.tolist() == [2, 1, 1, 2, 0, 0]
    assert csv_set.checksum == jsonl_set.checksum
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "saved"
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    data = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["bad", "good", "awful"], "label": [0, 1, 0]}, features=features),
        "test": datasets.Dataset.from_dict({"text": ["fine", "worse"], "label": [1, 0]}, features=features)})
    data.save_to_disk(str(folder))
    test = read_text_set(folder, split="test")
    assert test.texts == ["fine", "worse"] and test.classes == ["neg", "pos"] and test.labels.tolist() == [1, 0]
    assert load_text_split(folder, "test").labels.tolist() == [1, 0]
    with pytest.raises(DatasetError, match="holds the splits train, test: name one"):
        read_text_set(folder)


def test_one_file_holds_out_a_fixed_fifth_of_each_class(tmp_path):
    texts = [f"text {i}" for i in range(50)]
    labels = ["a"] * 30 + ["b"] * 20
    path = write_csv(tmp_path / "t.csv", texts, labels)
    train, test = load_text_split(path, "train"), load_text_split(path, "test")
    assert sorted(train.texts + test.texts) == sorted(texts) and not set(train.texts) & set(test.texts)
    assert test.labels.bincount().tolist() == [6, 4]
    assert load_text_split(path, "test").texts == test.texts  # fixed: no seed of the run's
    assert train.checksum != test.checksum


def test_a_test_split_with_a_label_the_training_split_lacks_is_an_error(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    write_csv(folder / "train.csv", ["x", "y"], ["a", "b"])
    write_csv(folder / "test.csv", ["z"], ["c"])
    with pytest.raises(DatasetError, match=r"labels \['c'\] that the training split does not"):
        load_text_split(folder, "test")


def test_truncation_rules_and_batches_by_length(tmp_path):
    import hf_folders as hf

    tokenizer = pytest.importorskip("transformers").AutoTokenizer.from_pretrained(str(hf.minilm_dir()))
    texts = read_text_set(write_csv(tmp_path / "t.csv", ["one two three four five six", "one", "one two"],
                                    ["a", "b", "a"]))
    right = tokenize(texts, tokenizer, 5, "right")
    left = tokenize(texts, tokenizer, 5, "left")
    ids = tokenizer.convert_tokens_to_ids(["[CLS]", "one", "two", "three", "four", "five", "six", "[SEP]"])
    assert right.input_ids[0].tolist() == [ids[0], ids[1], ids[2], ids[3], ids[7]]  # the first tokens kept
    assert left.input_ids[0].tolist() == [ids[0], ids[5], ids[6], ids[7]] or \
        left.input_ids[0].tolist()[-3:] == [ids[5], ids[6], ids[7]]  # the last tokens kept
    assert right.tokenization == {"tokenizer": type(tokenizer).__name__, "max_length": 5, "truncation": "right",
                                  "truncated": 1, "model_max_length": None}
    with pytest.raises(DatasetError, match="row 1 has 8 tokens, more than the maximum of 5"):
        tokenize(texts, tokenizer, 5, "none")
    lengths = torch.tensor([9, 3, 7, 3, 12, 5])
    assert [b.tolist() for b in length_batches(lengths, 4)] == [[1, 3, 5, 2], [0, 4]]
    batch = right.batch([1, 0])
    assert batch.input_ids.shape == (2, 5) and batch.attention_mask.tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch.input_ids[0, 3:].tolist() == [tokenizer.pad_token_id] * 2
    loader = TextLoader(right, 2, shuffle=True, seed=3)
    first = [b.tolist() for b in loader.batches(0)]
    assert sorted(i for b in first for i in b) == [0, 1, 2] and first == [b.tolist() for b in loader.batches(0)]
