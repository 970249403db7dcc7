"""`selectivity robustness` and `selectivity analyze` on a tiny real sweep (2 alphas x 1 seed)."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest
import torch

from selectivity.commands.evaluate import EvaluationError, find_runs, parse_eps, validate_robustness
from selectivity.runs import run_summary

ANALYSIS_JSON, ROBUSTNESS_CSV = "analysis.json", "robustness.csv"
from selectivity.cli import main


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A tiny sweep, alpha in {-1, 0}, seed 0, trained for one epoch with the debug executor."""
    from selectivity.sweep import run_sweep

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval")
    cache = root / "cache"
    overrides = [f"data.cache_dir={cache}", "data.train_per_class=30", "data.test_limit=200", "train.epochs=1",
                 "train.batch_size=50", "train.threads=1", "regularizer.warmup_epochs=0"]
    out = root / "sweep"
    outcome = run_sweep("demo", [-1.0, 0.0], [0], out, executor="debug", overrides=overrides, progress=False)
    assert not outcome.failed and len(outcome.results) == 2
    return out


ROB_ARGS = ["--corruptions", "gaussian_noise,contrast", "--severities", "1,3", "--attacks", "fgsm",
            "--eps", "0,2/255,8/255", "--limit", "64", "--no-progress"]


@pytest.fixture(scope="module")
def robust(sweep):
    assert main(["robustness", str(sweep), *ROB_ARGS]) == 0
    return sweep


def _runs(sweep):
    return sorted(p for p in sweep.iterdir() if (p / "final.json").is_file())


def test_robustness_csv_per_run(robust):
    for run in _runs(robust):
        table = pd.read_csv(run / ROBUSTNESS_CSV)
        assert list(table.columns[:4]) == ["kind", "name", "level", "accuracy"]
        assert set(table["kind"]) == {"clean", "corruption", "attack"}
        assert table["accuracy"].between(0, 1).all()
        assert (table["n"] == 64).all()
        corr = table[table["kind"] == "corruption"]
        assert len(corr) == 4 and set(corr["level"]) == {1, 3}
        assert set(corr["name"]) == {"gaussian_noise", "contrast"}
        attack = table[table["kind"] == "attack"]
        assert len(attack) == 6 and set(attack["name"]) == {"fgsm", "worst"}
        assert attack["level"].between(0, 1).all()
        # one attack run: the worst case over the attacks is that attack
        worst = attack[attack["name"] == "worst"].set_index("level")["accuracy"]
        assert worst.to_dict() == attack[attack["name"] == "fgsm"].set_index("level")["accuracy"].to_dict()
        clean = float(table.loc[table["kind"] == "clean", "accuracy"].iloc[0])
        zero = attack[attack["level"] == 0]["accuracy"]
        assert len(zero) == 2 and (zero == clean).all()
        # robust accuracy never exceeds clean accuracy (a sample counts only if clean is right)
        assert (attack["accuracy"] <= clean + 1e-12).all()


def test_results_table_gets_summary_columns(robust):
    results = pd.read_csv(robust / "results.csv")
    assert {"corruption_acc", "adv_acc/fgsm/2/255", "adv_acc/fgsm/8/255", "corruption_acc/s1",
            "adv_acc/worst/8/255"} <= set(results.columns)  # worst: what the adversarial claims read
    # A subset of the corruptions: no corruption_acc, and the reason (see test_run_summary.py).
    assert results["corruption_acc"].isna().all() and results["corruption_acc_reason"].str.contains("of the 75").all()
    parquet = pd.read_parquet(robust / "results.parquet")
    assert "corruption_acc" in parquet.columns


def test_the_report_reads_the_worst_case_column(robust, capsys):
    """claims.yaml's adversarial claims name adv_acc/worst/2/255: `selectivity report` finds that column
    in the sweep's results (eps written as 2/255) and tests the claim on its values."""
    from selectivity.report.html import build_report

    results = pd.read_csv(robust / "results.csv")
    assert "adv_acc/worst/2/255" in results.columns and results["adv_acc/worst/2/255"].notna().all()
    assert main(["report", str(robust), "--no-default-claims", "--claims",
                 str(_worst_claim(robust))]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("worst-2-255"))
    assert "not tested" not in line
    outputs = build_report(robust, n_boot=200)
    result = next(r for r in outputs.claims if r.claim.id == "si-down-lowers-worst-adv-acc")
    assert result.claim.metric == "adv_acc/worst/2/255" and result.verdict != "not tested", result.reason
    (comparison,) = result.comparisons  # alpha -1 against alpha 0, one seed each
    by_alpha = results.set_index("alpha")["adv_acc/worst/2/255"]
    assert comparison.mean_group == pytest.approx(by_alpha[-1.0])
    assert comparison.mean_baseline == pytest.approx(by_alpha[0.0])


def _worst_claim(sweep):
    path = sweep.parent / "worst_claim.yaml"
    path.write_text("claims:\n  - id: worst-2-255\n    statement: lower selectivity, lower worst-case accuracy\n"
                    "    metric: adv_acc/worst/2/255\n    group: \"< 0\"\n    test: less\n")
    return path


def test_robustness_is_resumable_and_deterministic(robust):
    run = _runs(robust)[0]
    before = (run / ROBUSTNESS_CSV).read_text()
    mtime = (run / ROBUSTNESS_CSV).stat().st_mtime_ns
    assert main(["robustness", str(run), *ROB_ARGS]) == 0
    assert (run / ROBUSTNESS_CSV).stat().st_mtime_ns == mtime  # nothing to do: not rewritten
    assert main(["robustness", str(run), *ROB_ARGS, "--force"]) == 0
    assert (run / ROBUSTNESS_CSV).read_text() == before  # seeded: the same numbers


def test_analyze_writes_analysis_json(robust, capsys):
    assert main(["analyze", str(robust), "--limit", "64", "--no-progress"]) == 0
    for run in _runs(robust):
        data = json.loads((run / ANALYSIS_JSON).read_text())
        assert {"dimensionality", "similarity", "ablation", "gradients", "summary", "layers"} <= set(data)
        assert set(data["dimensionality"]) == {"clean", "corrupted", "adversarial"}
        layer = data["layers"][0]
        assert {"pc95", "participation_ratio", "delta_pc95"} <= set(data["dimensionality"]["clean"][layer])
        assert data["similarity"] is not None and {"pwcca", "cka"} <= set(data["similarity"])
        curve = data["ablation"][layer]
        assert len(curve["selective"]) == len(curve["fractions"]) == len(curve["random_mean"])
        assert "cv_across_samples" in data["gradients"][layer]
        assert (run / "analysis_dimensionality.csv").is_file() and (run / "analysis_ablation.csv").is_file()
    results = pd.read_csv(robust / "results.csv")
    assert {"pc95_early", "pwcca_mean", "corruption_acc"} <= set(results.columns)
    assert any(c.startswith("pwcca/") for c in results.columns)
    assert any(c.startswith("pc95/") for c in results.columns)


def test_report_shows_the_new_sections(robust):
    from selectivity.report.html import build_report

    if not (robust / ANALYSIS_JSON).exists() and not any((r / ANALYSIS_JSON).exists() for r in _runs(robust)):
        assert main(["analyze", str(robust), "--limit", "64", "--no-progress"]) == 0
    outputs = build_report(robust, n_boot=200)
    page = outputs.page.read_text()
    for title in ("Robustness", "Representations"):
        assert title in page
    for name in ("corruption_accuracy", "adversarial_accuracy", "dimensionality_by_layer", "similarity_to_baseline"):
        assert name in outputs.figures and outputs.figures[name].is_file()
        assert f"{name}.png" in page
    verdicts = {r.claim.id: r.verdict for r in outputs.claims}
    assert {"low-si-more-corruption-robust", "low-si-less-adversarially-robust",
            "early-dimensionality-inverse-to-si"} <= set(verdicts)


def test_report_without_evaluations_leaves_new_claims_not_tested(sweep, tmp_path):
    from selectivity.report.html import build_report

    copy = tmp_path / "plain"
    copy.mkdir()
    table = pd.read_csv(sweep / "results.csv")
    keep = [c for c in table.columns if not c.startswith(("corruption_acc", "adv_acc", "pc95", "pr", "pwcca", "cka",
                                                         "delta_", "grad_", "clean_acc_eval"))]
    table[keep].to_csv(copy / "results.csv", index=False)
    outputs = build_report(copy, n_boot=200)
    verdicts = {r.claim.id: r.verdict for r in outputs.claims}
    assert verdicts["low-si-more-corruption-robust"] == "not tested"
    assert verdicts["low-si-less-adversarially-robust"] == "not tested"
    assert "corruption_accuracy" not in outputs.figures
    assert "Robustness" not in outputs.page.read_text()


@pytest.mark.parametrize("args, words", [
    (["--corruptions", "nope"], "valid names"),
    (["--severities", "6"], "1..5"),
    (["--eps", "2"], "[0, 1]"),
    (["--eps", "4/255,1.5"], "outside [0, 1]"),
    (["--eps=-1/255"], "outside [0, 1]"),
    (["--attacks", "cw"], "fgsm"),
    (["--attacks", "pgd,apgd"], "unknown attack(s) apgd; valid: fgsm, pgd, apgd-ce, apgd-dlr, square"),
    (["--attacks", "square", "--square-queries", "0"], "--square-queries must be a whole number of queries, 1 or more"),
    (["--attacks", "square", "--square-queries", "many"], "got 'many'"),
    (["--attacks", "apgd-ce", "--apgd-steps", "0"], "--apgd-steps must be a whole number of iterations"),
    (["--eps", ""], "--eps names nothing: give at least one"),
    (["--eps", " , "], "--eps names nothing"),
    (["--attacks", ""], "--attacks names nothing"),
    (["--corruptions", ""], "--corruptions names nothing"),
    (["--severities", ","], "--severities names nothing"),
])
def test_bad_robustness_arguments_exit_2(sweep, capsys, args, words):
    """One line, exit 2, before any work: no file of the run is written or touched."""
    run = _runs(sweep)[0]
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert main(["robustness", str(run), *args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def _outcomes(run, n=48):
    """The stored outcomes of the image set of ``n`` images (keys ``n<N>/...`` in the file)."""
    from selectivity.runs import load_tensors

    tensors, meta = load_tensors(run / "attack_outcomes.safetensors")
    prefix = f"n{n}/"

    def mine(d):
        return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}

    return mine(tensors), mine(json.loads(meta["settings"])), mine(json.loads(meta["costs"]))


def test_calls_on_other_images_keep_every_result_apart(sweep, tmp_path):
    """The README's order: corruptions and attacks on 64 images, then other attacks on 32 images. The
    second call adds its rows beside the first's (keyed by n) and loses none of them; the summary
    columns read the largest image set; a later call on the 32 images extends their worst case."""
    run = tmp_path / "run"
    shutil.copytree(_runs(sweep)[0], run, ignore=shutil.ignore_patterns("robustness.csv", "masking.csv",
                                                                         "attack_outcomes.safetensors"))
    first = ["robustness", str(run), "--corruptions", "contrast", "--severities", "1", "--attacks", "fgsm,pgd",
             "--eps", "2/255", "--limit", "64", "--no-progress"]
    assert main(first) == 0
    before = pd.read_csv(run / ROBUSTNESS_CSV)
    flags_before = pd.read_csv(run / "masking.csv")
    second = ["robustness", str(run), "--corruptions", "contrast", "--severities", "1", "--attacks", "square",
              "--square-queries", "10", "--eps", "2/255", "--limit", "32", "--no-progress"]
    assert main(second) == 0
    after = pd.read_csv(run / ROBUSTNESS_CSV)
    assert set(after["n"]) == {64, 32}
    kept = after[after["n"] == 64].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before.reset_index(drop=True), check_dtype=False)
    small = after[after["n"] == 32].set_index(["kind", "name"])["accuracy"]
    assert ("attack", "square") in small.index and ("attack", "worst") in small.index
    assert ("attack", "pgd") not in small.index  # pgd ran on the 64 images only: not in the 32's worst case
    flags = pd.read_csv(run / "masking.csv")
    pd.testing.assert_frame_equal(flags[flags["n"] == 64].reset_index(drop=True), flags_before, check_dtype=False)
    assert (flags["n"] == 32).any()
    big, _, _ = _outcomes(run, 64)
    assert {k for k in big if k.startswith(("fgsm", "pgd"))} == {f"fgsm@{2 / 255!r}", f"pgd@{2 / 255!r}"}
    summary = run_summary(run)
    assert summary["robustness_n"] == 64 and "adv_acc/pgd/2/255" in summary
    assert summary["adv_acc/worst/2/255"] == before.query("name == 'worst'")["accuracy"].item()
    # A later call on the same 32 images with another attack extends their worst case.
    assert main([*second[:7], "pgd", *second[10:]]) == 0
    small = pd.read_csv(run / ROBUSTNESS_CSV).query("n == 32 and kind == 'attack'").set_index("name")["accuracy"]
    tensors, _, _ = _outcomes(run, 32)
    both = torch.stack([tensors[f"{a}@{2 / 255!r}"].bool() for a in ("square", "pgd")]).all(dim=0)
    assert small["worst"] == both.double().mean().item()


def test_a_second_call_on_a_busy_run_is_refused_and_writes_nothing(sweep, tmp_path, capsys):
    """Concurrent calls: the run's lock is held by one; the other exits 2 with one line, touching no file."""
    from selectivity.runs import RunPaths, exclusive

    run = tmp_path / "run"
    shutil.copytree(_runs(sweep)[0], run)
    files = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".run.lock"}
    with exclusive(RunPaths(run).lock, "held by the test"):
        for command in (["robustness", str(run), "--corruptions", "contrast", "--severities", "1", "--attacks", "fgsm",
                         "--eps", "2/255", "--limit", "16", "--no-progress"],
                        ["analyze", str(run), "--limit", "16", "--no-progress"]):
            assert main(command) == 2
            err = capsys.readouterr().err.strip()
            assert "busy" in err and len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".run.lock"} == files


def test_the_worst_case_covers_every_attack_run_also_across_calls(sweep, tmp_path):
    """fgsm, then pgd, then square: each call adds its outcomes, and worst combines all of them per image."""
    run = tmp_path / "run"
    shutil.copytree(_runs(sweep)[0], run, ignore=shutil.ignore_patterns("robustness.csv", "masking.csv",
                                                                         "attack_outcomes.safetensors"))
    base = ["robustness", str(run), "--corruptions", "contrast", "--severities", "1", "--eps", "4/255,8/255",
            "--limit", "48", "--no-progress"]
    assert main([*base, "--attacks", "fgsm"]) == 0
    _, _, costs = _outcomes(run)
    assert main([*base, "--attacks", "pgd"]) == 0
    assert main([*base, "--attacks", "square", "--square-queries", "20"]) == 0
    tensors, settings, costs_after = _outcomes(run)
    assert costs_after["fgsm@" + repr(8 / 255)] == costs["fgsm@" + repr(8 / 255)]  # kept, not rerun
    assert settings["square@" + repr(8 / 255)] == '{"queries": 20}'
    table = pd.read_csv(run / ROBUSTNESS_CSV)
    for eps in (4 / 255, 8 / 255):
        rows = table[(table["kind"] == "attack") & ((table["level"] - eps).abs() < 1e-9)].set_index("name")["accuracy"]
        assert set(rows.index) == {"fgsm", "pgd", "square", "worst"}
        per_image = torch.stack([tensors[f"{a}@{eps!r}"].bool() for a in ("fgsm", "pgd", "square")])
        assert rows["worst"] == per_image.all(dim=0).double().mean().item()  # robust only if every attack failed
        assert all(rows["worst"] <= rows[a] for a in ("fgsm", "pgd", "square"))
        for a in ("fgsm", "pgd", "square"):  # each row is its outcomes' mean
            assert rows[a] == tensors[f"{a}@{eps!r}"].double().mean().item()
    flags = pd.read_csv(run / "masking.csv")
    assert len(flags) == 8 and flags.loc[flags["check"] == "apgd-vs-pgd", "flagged"].isna().all()

    # Another budget is another attack: square alone is rerun.
    assert main([*base, "--attacks", "square", "--square-queries", "30"]) == 0
    _, settings, again = _outcomes(run)
    assert settings["square@" + repr(8 / 255)] == '{"queries": 30}'
    assert again["pgd@" + repr(8 / 255)] == costs_after["pgd@" + repr(8 / 255)]
    # Rows from before the per-image outcomes were kept (a robustness.csv alone) are rerun, so
    # that the worst case covers them.
    (run / "attack_outcomes.safetensors").unlink()
    assert main([*base, "--attacks", "pgd"]) == 0
    tensors, _, _ = _outcomes(run)
    assert {k for k in tensors if "@" in k and not k.startswith(("gradient", "clean"))} == {
        f"{a}@{e!r}" for a in ("fgsm", "pgd", "square") for e in (4 / 255, 8 / 255)}
    again = pd.read_csv(run / ROBUSTNESS_CSV)
    assert again[again["name"] == "fgsm"]["accuracy"].tolist() == table[table["name"] == "fgsm"]["accuracy"].tolist()


def test_not_a_run_or_sweep_dir_exits_2(tmp_path, capsys):
    assert main(["robustness", str(tmp_path)]) == 2
    assert "neither a run directory" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_argument_checks():
    assert parse_eps("4/255") == pytest.approx(4 / 255)
    with pytest.raises(EvaluationError):
        parse_eps("-0.1")
    with pytest.raises(EvaluationError, match="valid names"):
        validate_robustness(corruptions=["fog", "mist"])
    with pytest.raises(ValueError):
        validate_robustness(severities=[0])


def test_find_runs_and_summary(robust, tmp_path):
    target = find_runs(robust)
    assert target.sweep == robust and len(target.runs) == 2
    single = find_runs(target.runs[0])
    assert single.sweep is None and single.runs == (target.runs[0],)
    summary = run_summary(target.runs[0])
    assert math.isnan(summary["corruption_acc"]) and "4 of the 75" in summary["corruption_acc_reason"]
    empty = tmp_path / "run"
    shutil.copytree(target.runs[0], empty, ignore=shutil.ignore_patterns(ROBUSTNESS_CSV, ANALYSIS_JSON))
    assert run_summary(empty) == {}


def test_a_missing_optional_package_is_announced_skipped_and_recorded(sweep, tmp_path, capsys, monkeypatch):
    """frost without imagecorruptions: said before the work, the rest runs, the CSV records the gap."""
    import importlib.util

    run = tmp_path / "run"
    shutil.copytree(sorted(p for p in sweep.iterdir() if (p / "final.json").exists())[0], run)
    (run / ROBUSTNESS_CSV).unlink(missing_ok=True)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "imagecorruptions" else real_find_spec(name, *a))
    argv = ["robustness", str(run), "--corruptions", "frost,contrast", "--severities", "1", "--attacks", "fgsm",
            "--eps", "1/255", "--limit", "40", "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "skipping frost" in err and "pip install imagecorruptions" in err
    table = pd.read_csv(run / ROBUSTNESS_CSV)
    frost = table[table["name"] == "frost"]
    assert len(frost) == 1 and frost["accuracy"].isna().all()
    assert table[table["name"] == "contrast"]["accuracy"].notna().all()
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)  # installed later: only frost is computed
    if real_find_spec("imagecorruptions") is not None:
        assert main(argv) == 0
        again = pd.read_csv(run / ROBUSTNESS_CSV)
        assert again[again["name"] == "frost"]["accuracy"].notna().all()
        assert again[again["name"] == "contrast"]["accuracy"].tolist() == table[table["name"] == "contrast"][
            "accuracy"].tolist()


def test_measure_a_sweep_writes_every_runs_measures_and_the_results_columns(sweep, capsys):
    """`selectivity measure SWEEP --measures`: every completed run, resumable, means in results.csv."""
    copy = sweep.parent / "measured"
    shutil.copytree(sweep, copy)
    assert main(["measure", str(copy), "--measures", "si,informedness,monoscore", "--no-progress"]) == 0
    assert "measured 2 run(s), kept 0" in capsys.readouterr().out
    results = pd.read_csv(copy / "results.csv")
    for run in find_runs(copy).runs:
        units = pd.read_csv(run / "unit_measures.csv")
        row = results[results.run == run.name].iloc[0]
        expected = units.groupby("layer", sort=False).informedness.mean().mean()
        assert row.mean_informedness == pytest.approx(expected, rel=1e-9)
        # the meter's MonoScore at the end of training is the measure's, on the same test images
        final = json.loads((run / "final.json").read_text())
        assert row.mean_monoscore == pytest.approx(final["mean_monoscore"], rel=1e-6)
    assert main(["measure", str(copy), "--measures", "si", "--no-progress"]) == 0
    assert "measured 0 run(s), kept 2" in capsys.readouterr().out
    assert main(["measure", str(copy), "--no-progress"]) == 2
    assert "is a sweep: measure it with --measures" in capsys.readouterr().err


def test_nan_logits_are_an_error_naming_the_first_non_finite_layer(sweep, tmp_path, capsys):
    """A run whose layer2.0.conv1 weights are NaN: robustness, measure and analyze refuse it (exit 2) and
    name that layer, instead of counting argmax(NaN) = class 0 as predictions; nothing is written."""
    from selectivity.runs import RunPaths, load_tensors, save_tensors

    run = tmp_path / "nan-run"
    shutil.copytree(_runs(sweep)[0], run, ignore=shutil.ignore_patterns("robustness.csv", "masking.csv",
                                                                         "attack_outcomes.safetensors"))
    weights, meta = load_tensors(RunPaths(run).weights)
    weights["layer2.0.conv1.weight"] = weights["layer2.0.conv1.weight"] * float("nan")
    save_tensors(RunPaths(run).weights, weights, meta)
    before = sorted(p.name for p in run.iterdir())
    for command in (["robustness", str(run), "--corruptions", "contrast", "--severities", "1", "--attacks", "fgsm",
                     "--eps", "2/255", "--limit", "16", "--no-progress"],
                    ["measure", str(run), "--no-progress"],
                    ["measure", str(run), "--measures", "si", "--no-progress"],
                    ["analyze", str(run), "--limit", "16", "--no-progress"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert "NaN logits" in err and "layer 'layer2.0.conv1'" in err, err
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        n for n in before if not n.startswith(".")]


def test_first_non_finite_layer_follows_the_forward_order():
    from torch import nn

    from selectivity.analysis.finite import NonFiniteOutputError, check_finite_logits, first_non_finite_layer

    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.ones(5, 3)
    assert first_non_finite_layer(net, x) is None
    check_finite_logits(net, x, net(x))  # finite: no error
    with torch.no_grad():
        net[2].bias[0] = float("inf")
    assert first_non_finite_layer(net, x) == "2"
    with pytest.raises(NonFiniteOutputError, match=r"inf logits on 5 of 5 images.*layer '2'"):
        check_finite_logits(net, x, net(x))
    x[1, 0] = float("nan")
    assert first_non_finite_layer(net, x) == ""
