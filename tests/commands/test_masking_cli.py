"""A deliberately masked model is flagged; the same model without the mask is not (issue 19).

examples/masked_model.py:quantized_cnn rounds its input (a zero gradient everywhere), trained by
`selectivity train` on the bundled demo set; `selectivity robustness` with white-box attacks and
Square must see white-box accuracy staying up while Square's falls, write the flags to
masking.csv, print them, and the report must say so. Both train in float64, so that their end
state is the same on every machine. The flags are structural (a rounding has a zero gradient on
every machine), and the margins measured here are wide: at 8/255 Square fooled 11% of the images
that every white-box attack failed on (threshold 2%), the plain model 0%.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from selectivity.cli import main

ROOT = Path(__file__).resolve().parents[2]  # the repository root, where examples/ lies
ATTACK_ARGS = ["--corruptions", "contrast", "--severities", "1", "--attacks", "fgsm,pgd,apgd-ce,square",
               "--apgd-steps", "10", "--square-queries", "150", "--eps", "2/255,8/255", "--no-progress"]


def _train(out: Path, cache_dir: str, quantize: bool) -> Path:
    settings = [f"data.cache_dir={cache_dir}", "data.train_per_class=100", "data.test_limit=200", "train.epochs=6",
                "train.batch_size=50", "train.threads=1", "regularizer.warmup_epochs=0", "train.dtype=float64",
                "model.name=examples.masked_model:quantized_cnn", f"model.kwargs.quantize={str(quantize).lower()}"]
    argv = ["train", "demo", "--out", str(out), "--no-progress"] + [a for s in settings for a in ("--set", s)]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, cache_dir):
    """(masked run, plain run), both trained and attacked, each alone in a sweep-like folder."""
    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)
    try:
        root = tmp_path_factory.mktemp("masking")
        runs = {}
        for name, quantize in (("masked", True), ("plain", False)):
            run = _train(root / name / "run", cache_dir, quantize)
            assert main(["robustness", str(run), *ATTACK_ARGS]) == 0
            runs[name] = run
        yield runs
    finally:
        mp.undo()


def _accuracy(run: Path) -> dict:
    table = pd.read_csv(run / "robustness.csv")
    attacks = table[table["kind"] == "attack"]
    return {(r.name, round(r.level * 255)): r.accuracy for r in attacks.itertuples(index=False)} | {
        "clean": float(table.loc[table["kind"] == "clean", "accuracy"].iloc[0])}


def test_the_masked_model_is_flagged(evaluated):
    run = evaluated["masked"]
    acc = _accuracy(run)
    assert acc["clean"] > 0.15  # it learned something
    # White-box accuracy stays up (only PGD's random start moves anything), Square's falls.
    for attack in ("fgsm", "pgd", "apgd-ce"):
        assert acc[(attack, 8)] >= acc["clean"] - 0.04, acc
    assert acc[("square", 8)] <= acc[("apgd-ce", 8)] - 0.05, acc
    assert acc[("worst", 8)] <= min(acc[(a, 8)] for a in ("fgsm", "pgd", "apgd-ce", "square"))
    flags = pd.read_csv(run / "masking.csv")
    flagged = {(r.check, round(r.eps * 255)) for r in flags.itertuples(index=False) if str(r.flagged) == "True"}
    assert ("blackbox", 8) in flagged and ("gradient", 8) in flagged and ("gradient", 2) in flagged
    gradient = flags[(flags["check"] == "gradient")]
    assert (gradient["value"] == 1.0).all()  # a rounding: no image has a gradient
    detail = flags[(flags["check"] == "blackbox") & (flags["eps"] > 0.03)]["detail"].iloc[0]
    assert "square fooled" in detail and "fgsm, pgd, apgd-ce" in detail


def test_the_same_model_without_rounding_is_not_flagged(evaluated):
    run = evaluated["plain"]
    acc = _accuracy(run)
    assert acc[("apgd-ce", 8)] < acc["clean"] - 0.1  # white-box attacks work on it
    for eps in (2, 8):  # the acceptance inequalities, on a run trained by `selectivity train demo`
        assert acc[("apgd-ce", eps)] <= acc[("pgd", eps)] + 0.005, acc
        assert all(acc[("worst", eps)] <= acc[(a, eps)] for a in ("fgsm", "pgd", "apgd-ce", "square")), acc
    flags = pd.read_csv(run / "masking.csv")
    assert set(flags["check"]) == {"blackbox", "epsilon", "apgd-vs-pgd", "gradient"}
    assert flags["flagged"].notna().all()  # every check ran
    assert not (flags["flagged"].astype(str) == "True").any(), flags[["eps", "check", "detail"]].to_string()


def test_the_command_prints_the_flags_and_the_cost(evaluated, capsys):
    assert main(["robustness", str(evaluated["masked"]), *ATTACK_ARGS]) == 0  # nothing to do: prints the record
    out = capsys.readouterr().out
    assert "GRADIENT MASKING? blackbox at 8/255: square fooled" in out
    assert "cost per image, square: 2/255" in out and "calls)" in out
    assert main(["robustness", str(evaluated["plain"]), *ATTACK_ARGS]) == 0
    assert "gradient masking: no flag (8 checks)" in capsys.readouterr().out


def test_the_report_says_so(evaluated):
    from selectivity.report.html import build_report

    page = build_report(evaluated["masked"].parent, n_boot=200).page.read_text()
    assert "Gradient masking suspected" in page and "square fooled" in page
    page = build_report(evaluated["plain"].parent, n_boot=200).page.read_text()
    assert "Gradient masking" in page and "No check flagged" in page and "suspected" not in page
