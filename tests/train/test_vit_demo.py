"""The demo's question asked of a transformer: the vit_demo preset trains with the knob, and mean SI
of its MLP units moves with alpha. Trained in float64 (train.dtype), so that the order of three
runs does not hang on a machine's float32 summation order."""

import json
import warnings

from selectivity.cli import main


def test_vit_demo_trains_with_the_knob_and_mean_si_follows_alpha(tmp_path, tiny_overrides, capsys):
    small = ["model.kwargs.dim=16", "model.kwargs.depth=2", "model.kwargs.heads=2", "train.dtype=float64"]
    sets = [a for o in tiny_overrides + small for a in ("--set", o)]
    finals = {}
    for alpha in ("-1", "0", "1"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the positive-part notice
            code = main(["train", "vit_demo", "--alpha", alpha, "--out", str(tmp_path / alpha), "--no-progress",
                         *sets])
        assert code == 0, capsys.readouterr().err
        finals[alpha] = json.loads((tmp_path / alpha / "final.json").read_text())
    layers = sorted(k for k in finals["0"] if k.startswith("si/"))
    assert layers == ["si/blocks.0.mlp.act", "si/blocks.1.mlp.act"]  # the MLP activations, one SI each
    assert finals["0"]["dtype"] == "float64" and finals["0"]["model"] == "vit_demo"
    si = [finals[a]["mean_si"] for a in ("-1", "0", "1")]
    # Measured here: 0.083, 0.169, 0.280. The gaps asked for are a third of those.
    assert si[1] - si[0] > 0.03 and si[2] - si[1] > 0.03, si
    capsys.readouterr()
    assert main(["measure", str(tmp_path / "1"), "--no-progress"]) == 0
    assert "blocks.1.mlp.act" in capsys.readouterr().out
