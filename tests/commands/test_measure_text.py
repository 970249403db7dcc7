"""`selectivity measure --model hf:DIR --data TEXTS`: units of Hugging Face text models, offline.

References are written here from transformers' own forward and forward hooks of the test's own,
one text at a time (no padding at all), then reduced by the definition in NumPy: the mean over a
text's tokens of each token's positive part (or the rule asked for), class means and SI by the
loop references. The tool batches texts of different lengths together, so a rule that counted
padding disagrees with them.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from selectivity.cli import main

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "core"))
sys.path.insert(0, str(HERE.parent / "models"))
from reference import class_means_loop, selectivity_loop  # noqa: E402

transformers = pytest.importorskip("transformers")
import hf_folders as hf  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

TEXTS = [
    "The flight was wonderful, the crew kind and the seats comfortable; I would fly with them again tomorrow.",
    "Awful.", "Lost my bag again & nobody answers the phone <b>at all</b>", "ok",
    "Great service!", "Delayed three hours with no explanation, no food and no apology from anyone at the gate.",
    "Flight 22 departs at 9.", "Thanks for the upgrade, what a lovely surprise", "Terrible legroom, never again",
    "The app shows my booking.", "Best airline I have flown with in years, friendly and on time", "meh",
    "Gate changed to B4.", "I am so angry about the cancellation and the rude agent", "Loved it",
]
LABELS = ["pos", "neg", "neg", "neutral", "pos", "neg", "neutral", "pos", "neg", "neutral", "pos", "neutral",
          "neutral", "neg", "pos"]
CLASSES = sorted(set(LABELS))


def reference_units(model, tokenizer, layers, texts, tokens="mean", positive_part=True, prefix=1):
    """layer -> (N, U): each text alone through the model, its layers' outputs by hooks, then the rule."""
    out = {name: [] for name in layers}
    seen = {}
    handles = [model.get_submodule(n).register_forward_hook(lambda m, a, o, n=n: seen.__setitem__(n, o.detach()))
               for n in layers]
    try:
        for text in texts:
            encoded = tokenizer(text, return_tensors="pt")
            with torch.no_grad():
                model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
            for name in layers:
                x = seen[name][0].double().numpy()  # (T, U), no padding
                x = np.maximum(x, 0) if positive_part else x
                rows = {"mean": x, "cls": x[:1], "last": x[-1:], "patches": x[prefix:]}[tokens]
                out[name].append(rows.mean(axis=0))
    finally:
        for h in handles:
            h.remove()
    return {name: np.stack(v) for name, v in out.items()}


def reference_si(units: dict, labels) -> dict:
    y = np.array([CLASSES.index(v) for v in labels])
    return {name: selectivity_loop(class_means_loop(u, y, len(CLASSES))) for name, u in units.items()}


def tool_si(out: Path) -> dict:
    frame = pd.read_csv(out / "unit_measures.csv")
    return {layer: g.sort_values("unit").si.to_numpy() for layer, g in frame.groupby("layer")}


def run(args, capsys):
    code = main(["measure", *map(str, args), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- a real pretrained model: all-MiniLM-L6-v2 (BERT, 6 layers x 1,536 MLP units) --------------------------


def test_minilm_units_equal_transformers_own_forward(tmp_path, capsys):
    folder = hf.minilm_dir()
    data = hf.write_texts(tmp_path / "reviews.csv", TEXTS, LABELS)
    code, out, err = run(["--model", f"hf:{folder}", "--data", data, "--out", tmp_path / "out", "--batch-size", 4],
                         capsys)
    assert code == 0, err
    assert "network" in out and "dead units" in out and "mean SI of the live units" in out  # the run form's summary
    assert "15 texts, 3 classes (neg, neutral, pos), 6 layers (9216 units) of BertModel" in out
    assert "at most 512 tokens" in out and "truncation none (0 texts cut)" in out
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    layers = [f"encoder.layer.{i}.intermediate.intermediate_act_fn" for i in range(6)]
    expected = reference_si(reference_units(model, tokenizer, layers, TEXTS), LABELS)
    got = tool_si(tmp_path / "out")
    assert sorted(got) == sorted(layers) and all(len(v) == 1536 for v in got.values())
    for name in layers:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5, rtol=0)
    summary = json.loads((tmp_path / "out" / "measure.json").read_text())
    assert summary["tokenization"]["max_length"] == 512 and summary["tokenization"]["truncation"] == "none"
    page = (tmp_path / "out" / "exemplars.html").read_text()
    assert "<b>at" not in page and "&lt;" in page and "&amp;" in page  # the text is escaped, never markup
    assert (tmp_path / "out" / "measure_agreement.csv").is_file()


def test_minilm_padding_never_counts(tmp_path):
    """All texts in one batch (lengths 3 to 25 tokens): the tool must equal the per-text reference,
    and the same batch with its padding counted (the mean over every position) must not."""
    from selectivity.commands.measure_text import measure_text

    folder = hf.minilm_dir()
    summary = measure_text(f"hf:{folder}", hf.write_texts(tmp_path / "t.csv", TEXTS, LABELS), tmp_path / "out",
                           measures="si", batch_size=64, progress=False)
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    layer = "encoder.layer.3.intermediate.intermediate_act_fn"
    expected = reference_si(reference_units(model, tokenizer, [layer], TEXTS), LABELS)[layer]
    np.testing.assert_allclose(tool_si(tmp_path / "out")[layer], expected, atol=1e-5, rtol=0)
    seen = []
    hook = model.get_submodule(layer).register_forward_hook(lambda m, a, o: seen.append(o.detach().double()))
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert int((batch["attention_mask"] == 0).sum()) > 100  # much padding in this batch
    with torch.no_grad():
        model(**batch)
    hook.remove()
    counted = {layer: seen[0].clamp(min=0).mean(dim=1).numpy()}  # padding counted as tokens
    assert np.abs(reference_si(counted, LABELS)[layer] - expected).max() > 1e-3
    assert summary["texts"] == 15


# -- tiny random models of each family, built here ------------------------------------------------------------


@pytest.mark.parametrize("make, flags, tokens, layers", [
    (hf.make_bert, ["--tokens", "cls"], "cls", [f"encoder.layer.{i}.intermediate.intermediate_act_fn" for i in range(2)]),
    (hf.make_roberta, [], "mean", [f"encoder.layer.{i}.intermediate.intermediate_act_fn" for i in range(2)]),
    (hf.make_distilbert, ["--raw-tokens"], "mean", [f"transformer.layer.{i}.ffn.activation" for i in range(2)]),
    (hf.make_gpt2, ["--tokens", "last"], "last", [f"transformer.h.{i}.mlp.act" for i in range(2)]),
])
def test_text_families_match_their_reference(tmp_path, capsys, make, flags, tokens, layers):
    folder = make(tmp_path / "model")
    data = hf.write_texts(tmp_path / "texts.csv", TEXTS, LABELS)
    code, out, err = run(["--model", f"hf:{folder}", "--data", data, "--out", tmp_path / "out", "--batch-size", 5,
                          "--measures", "si", *flags], capsys)
    assert code == 0, err
    architecture = json.loads((folder / "config.json").read_text())["architectures"][0]  # GPT2LMHeadModel ...
    model = getattr(transformers, architecture).from_pretrained(str(folder), local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    raw = "--raw-tokens" in flags
    expected = reference_si(reference_units(model, tokenizer, layers, TEXTS, tokens, not raw), LABELS)
    got = tool_si(tmp_path / "out")
    assert sorted(got) == sorted(layers)
    for name in layers:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5, rtol=0)


def test_cls_is_refused_for_a_model_without_a_class_token(tmp_path, capsys):
    folder = hf.make_gpt2(tmp_path / "gpt2")
    code, _, err = run(["--model", f"hf:{folder}", "--data", hf.write_texts(tmp_path / "t.csv"), "--out",
                        tmp_path / "out", "--tokens", "cls"], capsys)
    assert code == 2 and "no class token" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("make, layers", [
    (hf.make_vit, [f"vit.layers.{i}.mlp.activation_fn" for i in range(2)]),
    (hf.make_convnext, [f"convnext.encoder.stages.{i}.layers.0" for i in range(2)]),
    (hf.make_resnet, [f"resnet.encoder.stages.{i}.layers.0" for i in range(2)]),
])
def test_image_classifiers_match_their_reference(tmp_path, capsys, make, layers):
    from image_folders import read_images, write_images

    folder = make(tmp_path / "model")
    data = write_images(tmp_path / "images", 32)
    code, out, err = run(["--model", f"hf:{folder}", "--data", data, "--out", tmp_path / "out", "--measures", "si"],
                         capsys)
    assert code == 0, err
    model = transformers.AutoModelForImageClassification.from_pretrained(str(folder), local_files_only=True).eval()
    x, labels = read_images(data)
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    seen = {}
    handles = [model.get_submodule(n).register_forward_hook(lambda m, a, o, n=n: seen.__setitem__(n, o.detach()))
               for n in layers]
    with torch.no_grad():
        model(pixel_values=(x - mean) / std)
    for h in handles:
        h.remove()
    got = tool_si(tmp_path / "out")
    assert sorted(got) == sorted(layers)
    for name in layers:
        o = seen[name].double()
        units = o.clamp(min=0).mean(dim=1) if o.ndim == 3 else o.mean(dim=(2, 3))  # ViT tokens; CNN channels
        expected = selectivity_loop(class_means_loop(units.numpy(), labels, 3))
        np.testing.assert_allclose(got[name], expected, atol=1e-5, rtol=1e-5)  # ConvNeXt: SI of raw, signed outputs


def test_hf_names_in_the_local_cache_and_nothing_downloaded(tmp_path, capsys, monkeypatch):
    hf.make_bert(tmp_path / "cache" / "models--acme--tiny-bert" / "snapshots" / "abc123")
    (tmp_path / "cache" / "models--acme--tiny-bert" / "refs").mkdir()
    (tmp_path / "cache" / "models--acme--tiny-bert" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    data = hf.write_texts(tmp_path / "t.csv")
    code, out, err = run(["--model", "hf:acme/tiny-bert", "--data", data, "--out", tmp_path / "out", "--measures",
                          "si"], capsys)
    assert code == 0, err
    code, _, err = run(["--model", "hf:acme/not-here", "--data", data, "--out", tmp_path / "out2"], capsys)
    assert code == 2 and "nothing is downloaded" in err and "acme/not-here" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out2").exists()
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"


# -- bad input: one line, exit 2, nothing written ------------------------------------------------------------


def _bad(tmp_path, capsys, args, expected):
    out = tmp_path / "never"
    code, stdout, err = run([*args, "--out", out], capsys)
    assert code == 2, err
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_bad_texts_are_refused_before_any_work(tmp_path, capsys):
    folder = hf.make_bert(tmp_path / "bert")
    model = ["--model", f"hf:{folder}"]
    good = hf.write_texts(tmp_path / "good.csv")
    _bad(tmp_path, capsys, [*model, "--data", good, "--text-column", "review"],
         "has no text column 'review' (it has text, label)")
    _bad(tmp_path, capsys, [*model, "--data", hf.write_texts(tmp_path / "empty.csv", ["fine", "  ", "bad"],
                                                              ["a", "b", "a"])], "row 2: the text is empty")
    _bad(tmp_path, capsys, [*model, "--data", hf.write_texts(tmp_path / "one.csv", ["fine", "good"], ["a", "a"])],
         "has 1 class ('a'); selectivity needs at least two classes")
    long = hf.write_texts(tmp_path / "long.csv", ["word " * 100, "short one"], ["a", "b"])
    _bad(tmp_path, capsys, [*model, "--data", long], "row 1 has 102 tokens, more than the maximum of 64")
    code, out, err = run([*model, "--data", long, "--out", tmp_path / "cut", "--truncation", "right", "--measures",
                          "si"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "cut" / "measure.json").read_text())["tokenization"]["truncated"] == 1


def test_bad_model_folders_are_refused_before_any_work(tmp_path, capsys):
    folder = hf.make_bert(tmp_path / "bert")
    good = hf.write_texts(tmp_path / "good.csv")
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((folder / name).read_bytes())
    _bad(tmp_path, capsys, ["--model", f"hf:{bare}", "--data", good], "has no tokenizer files: fetch")
    (bare / "model.safetensors").rename(bare / "pytorch_model.bin")
    _bad(tmp_path, capsys, ["--model", f"hf:{bare}", "--data", good],
         "pytorch_model.bin but no model.safetensors: pickled weights are never loaded")
    _bad(tmp_path, capsys, ["--model", f"hf:{tmp_path / 'nowhere'}", "--data", good], "is not a folder")


def test_a_model_without_mlp_activations_is_refused_with_what_it_has(tmp_path):
    from selectivity.commands.measure_text import measure_text
    from selectivity.core import LayerSelectionError
    from selectivity.models.hf import load_hf

    loaded = load_hf(f"hf:{hf.make_bert(tmp_path / 'bert')}")
    for layer in loaded.model.encoder.layer:  # the activation as a plain function, as some models apply it
        del layer.intermediate._modules["intermediate_act_fn"]
        layer.intermediate.intermediate_act_fn = torch.nn.functional.gelu
    with pytest.raises(LayerSelectionError, match=r"has no MLP activation module in its layers \(its layer "
                                                  r"encoder.layer.0 holds .*intermediate.dense \(Linear\)"):
        measure_text(loaded, hf.write_texts(tmp_path / "t.csv"), tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = measure_text(loaded, hf.write_texts(tmp_path / "t.csv"), tmp_path / "named", measures="si",
                            layers=["encoder.layer.*.intermediate.dense"], progress=False)
    assert done["units"] == 2 * 24
