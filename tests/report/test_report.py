"""Tests of `selectivity report`: files, page, CLI, and the page as headless Chromium renders it."""

from __future__ import annotations

import argparse
import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from selectivity.report import ReportError, add_report_parser, build_report, load_sweep
from selectivity.report.claims import INCONCLUSIVE, NOT_TESTED, SUPPORTED

from .sweep_builder import ALPHAS, SEEDS, write_run, write_sweep

FIGURES = ("accuracy_vs_selectivity", "accuracy_vs_alpha", "selectivity_vs_alpha", "selectivity_by_layer",
           "training_curves", "si_distribution")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _images(page: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=['\"]([^'\"]*)['\"]", page)


def _decode_png(uri: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:60]
    data = base64.b64decode(uri[len(prefix):], validate=True)
    assert data.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(data))
    image.verify()  # a valid, complete PNG
    return Image.open(io.BytesIO(data))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selectivity")
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_report_writes_the_page_and_every_figure(sweep_dir, built_report):
    assert built_report.page == sweep_dir / "report.html"
    assert set(built_report.figures) == set(FIGURES)
    for name in FIGURES:
        image = Image.open(sweep_dir / f"{name}.png")
        assert image.width > 500 and image.height > 300
    page = built_report.page.read_text()
    uris = _images(page)
    assert len(uris) == len(FIGURES)
    for uri in uris:
        _decode_png(uri)
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"<(script|link)\b", page)
    assert not re.search(r"\b(src|href)=['\"](?!data:)", page)


def test_page_shows_claims_and_results(sweep_dir, built_report):
    page = built_report.page.read_text()
    verdicts = {r.claim.id: r.verdict for r in built_report.claims}
    # the synthetic truth: alpha = -1 keeps accuracy and cuts SI to a third; alpha >= 1 costs accuracy
    for claim_id in ("negative-alpha-lowers-si", "alpha-1-halves-si"):
        assert verdicts[claim_id] == SUPPORTED, claim_id
    # a run diverged at alpha = 5: claims over it are not decided by the survivors, and name it
    by_id = {r.claim.id: r for r in built_report.claims}
    for claim_id in ("positive-alpha-raises-si", "positive-alpha-lowers-accuracy"):
        assert verdicts[claim_id] == INCONCLUSIVE, claim_id
        assert "alpha = 5: seed 3 diverged" in by_id[claim_id].reason
        assert "supported on the survivors alone" in by_id[claim_id].reason
    assert verdicts["tiny-imagenet-lower-si-raises-accuracy"] == NOT_TESTED
    for claim_id in verdicts:
        assert claim_id in page
    assert "1 diverged" in page
    assert "resnet20 on cifar10" in page
    # one row per (claim, cell): the cell is named, and the methods say what is controlled
    assert "model=resnet20, dataset=cifar10" in page
    assert "Holm" in page and "Fieller" in page and "intersection-union" in page
    table = pd.read_csv(sweep_dir / "claims.csv")
    assert built_report.table == sweep_dir / "claims.csv"
    assert {"claim", "model", "dataset", "alpha", "estimate", "ci_low", "ci_high", "p_support", "p_against",
            "alpha_verdict", "verdict", "seeds_to_support", "seeds_to_refute"} <= set(table.columns)
    assert set(table["claim"]) == set(verdicts)
    halves = table[table["claim"] == "alpha-1-halves-si"].iloc[0]
    assert halves["scale"] == "ratio" and halves["ci_low"] < halves["estimate"] < halves["ci_high"] < 0.5
    for alpha in ALPHAS:
        assert f"<td class='num'>{alpha:g}</td>" in page


def test_the_run_directories_are_the_record_and_results_csv_only_a_copy(tmp_path):
    root = write_sweep(tmp_path / "sweep", alphas=(-1.0, 0.0), seeds=(0, 1), diverged=False, units=False)
    frame = load_sweep(root)  # from final.json files
    assert len(frame) == 4 and frame["alpha"].tolist() == [-1.0, -1.0, 0.0, 0.0]
    frame.iloc[:1].to_csv(root / "results.csv", index=False)  # cut short by a crash: one row of four
    assert len(load_sweep(root)) == 4
    frame.assign(test_acc=0.5).to_csv(root / "results.csv", index=False)  # a stale copy does not win either
    assert (load_sweep(root)["test_acc"] == frame["test_acc"]).all()
    outputs = build_report(root, n_boot=200)
    assert "si_distribution" not in outputs.figures  # no si_per_unit.csv in these runs
    assert "No si_per_unit.csv" in outputs.page.read_text()
    (tmp_path / "only").mkdir()
    frame.to_csv(tmp_path / "only" / "results.csv", index=False)  # the table alone: used as it is
    assert len(load_sweep(tmp_path / "only")) == 4


def test_single_seed_sweep_reports_seeds_needed(tmp_path):
    root = write_sweep(tmp_path / "sweep", alphas=(-1.0, 0.0, 1.0), seeds=(0,), diverged=False, units=False)
    outputs = build_report(root, n_boot=200)
    assert all(r.verdict in ("inconclusive", "not tested") for r in outputs.claims)
    assert "cannot be estimated; run 3 seeds or more" in outputs.page.read_text()


def test_user_errors_are_report_errors(tmp_path):
    with pytest.raises(ReportError, match="is not a directory"):
        load_sweep(tmp_path / "nowhere")
    with pytest.raises(ReportError, match="neither results.csv nor run directories"):
        load_sweep(tmp_path)
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReportError, match=r"lacks the column\(s\) \['alpha', 'seed', 'status'\]"):
        load_sweep(tmp_path)


def test_cli_subcommand(sweep_dir, tmp_path, capsys):
    user = tmp_path / "mine.yaml"
    user.write_text("claims:\n  - id: deep-layer-more-selective\n    statement: alpha = 5 raises the last layer's SI\n"
                    "    metric: si/layer3.0\n    group: 5\n    test: greater\n    failed: exclude\n"
                    "  - id: needs-alpha-100\n    statement: x\n    metric: test_acc\n    group: 100\n    test: less\n")
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy)
    args = _parser().parse_args(["report", str(copy), "--claims", str(user), "--bootstrap", "300"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"deep-layer-more-selective\s+supported", out)  # among runs that finish, as it says
    assert "failed: exclude (the claim is about the runs that finish)" in (copy / "report.html").read_text()
    assert re.search(r"needs-alpha-100\s+not tested", out)
    assert f"report: {copy / 'report.html'}" in out
    assert f"claims table: {copy / 'claims.csv'}" in out
    strict = _parser().parse_args(["report", str(copy), "--claims", str(user), "--strict", "--no-default-claims"])
    with pytest.raises(ReportError, match="1 claim\\(s\\) not tested on this sweep: needs-alpha-100"):
        strict.func(strict)
    with pytest.raises(SystemExit):
        _parser().parse_args(["report", str(copy), "--bootstrap", "0"])


def test_report_without_completed_runs_still_writes_a_page(tmp_path):
    for seed in SEEDS[:2]:
        write_run(tmp_path, 100.0, seed, acc=0.1, si=0.0, status="diverged")
    outputs = build_report(tmp_path, n_boot=100)
    page = outputs.page.read_text()
    assert outputs.figures == {}
    assert "No completed run" in page
    assert all(r.verdict == NOT_TESTED for r in outputs.claims)


def test_page_renders_in_headless_chromium(chromium, built_report, tmp_path):
    shot = tmp_path / "report.png"
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,4500",
               built_report.page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert shot.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 4500)
    pixels = np.asarray(image).reshape(-1, 3)
    colours = np.unique(pixels[::7], axis=0)
    assert len(colours) > 500, f"only {len(colours)} distinct colours: is the page blank?"
    white = (pixels > 245).all(axis=1).mean()
    assert white < 0.9, f"{white:.0%} of the screenshot is white"
    # the figures are in the screenshot: the coolwarm reds and blues of the alpha colours
    r, b = pixels[:, 0].astype(int), pixels[:, 2].astype(int)
    assert ((r - b > 80) & (r > 150)).sum() > 500 and ((b - r > 80) & (b > 150)).sum() > 500


def test_selectivity_cli_runs_the_report(sweep_dir, tmp_path, capsys):
    """Through `selectivity` itself, once cli.py registers the sub-command with add_report_parser."""
    from selectivity import cli

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "report" not in commands:
        pytest.skip("selectivity.cli does not register `report` yet (call add_report_parser in build_parser)")
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy)
    assert cli.main(["report", str(copy), "--bootstrap", "200"]) == 0
    assert (copy / "report.html").exists()
    assert cli.main(["report", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_measure_agreement_and_selectivity_over_training_are_drawn_when_runs_have_them(tmp_path):
    root = write_sweep(tmp_path / "sweep", alphas=(-1.0, 0.0), seeds=(0, 1), diverged=False, units=False)
    measures = ["si", "auroc", "informedness"]
    rows = [dict(layer=layer, measure_a=a, measure_b=b, spearman=0.5)
            for layer in ("l1", "l2") for i, a in enumerate(measures) for b in measures[i + 1:]]
    for run in sorted(p for p in root.iterdir() if (p / "final.json").exists()):
        pd.DataFrame(rows).to_csv(run / "measure_agreement.csv", index=False)
        pd.DataFrame([dict(epoch=e, step=e * 10, alpha=0.0, layer="l1.0", stage="l1", unit=u, si=0.1 * e, live=True)
                      for e in (0, 1, 2) for u in range(4)]).to_csv(run / "si_over_training.csv", index=False)
    outputs = build_report(root, n_boot=200)
    page = outputs.page.read_text()
    assert "Selectivity measures" in page and "Selectivity over training" in page
    for name in ("measure_agreement.png", "selectivity_over_training.png"):
        with Image.open(root / name) as image:
            assert image.width > 300 and len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20


def test_over_training_curves_follow_each_runs_schedule_even_when_two_share_an_alpha(tmp_path):
    from selectivity.report.html import load_over_training

    rows = []
    for name, schedule in (("a", "-5*8"), ("b", "0*2 -5*6")):
        for seed in (0, 1):
            run = tmp_path / f"{name}{seed}"
            run.mkdir()
            pd.DataFrame([dict(epoch=0, step=0, alpha=0.0, layer="l.0", stage="l", unit=0, si=0.1, live=True)]).to_csv(
                run / "si_over_training.csv", index=False)
            rows.append(dict(run=run.name, alpha=-5.0, seed=seed, schedule=schedule, status="completed"))
    loaded = load_over_training(tmp_path, pd.DataFrame(rows))
    assert sorted(loaded.groupby("condition")["run_dir"].apply(sorted).to_dict().items()) == [
        ("schedule -5*8", ["a0", "a1"]), ("schedule 0*2 -5*6", ["b0", "b1"])]


@pytest.mark.parametrize("name", ["cifar$10", "a $b$ c$", r"price $5 \frac $"])
def test_a_dollar_sign_in_a_name_is_drawn_as_written(tmp_path, name):
    """A data folder or run name with '$' is text, not a matplotlib math formula (which fails unbalanced)."""
    from selectivity.report.figures import plot_accuracy_vs_selectivity

    results = pd.DataFrame({"alpha": [-1.0, 0.0, -1.0, 0.0], "seed": [0, 0, 1, 1], "test_acc": [0.5, 0.52, 0.51, 0.5],
                            "mean_si": [0.1, 0.25, 0.12, 0.26], "status": ["completed"] * 4, "model": [name] * 4,
                            "dataset": [name] * 4})
    path = plot_accuracy_vs_selectivity(results, tmp_path / "fig.png", title=f"resnet on {name}")
    assert path.is_file() and path.stat().st_size > 1000


# --------------------------------------------------------------------------- what a reader meets (issue 24.14)


def _claims_html(results, **claim_fields):
    from selectivity.report.claims import evaluate_claim, parse_claims
    from selectivity.report.html import _claims_section

    base = {"id": "c", "statement": "s", "metric": "test_acc", "group": -1, "test": "greater"}
    claim = parse_claims({"claims": [{**base, **claim_fields}]})[0]
    result = evaluate_claim(results, claim)
    return result, _claims_section([result], 0.95)


def _paired(differences, seeds=None):
    rows = []
    for k, d in enumerate(differences):
        seed = k if seeds is None else seeds[k]
        rows += [{"alpha": 0.0, "seed": seed, "status": "completed", "model": "m", "test_acc": 0.5 + 0.01 * k},
                 {"alpha": -1.0, "seed": seed, "status": "completed", "model": "m", "test_acc": 0.5 + 0.01 * k + d}]
    return pd.DataFrame(rows)


def test_supported_beside_a_two_sided_interval_reaching_zero_says_why():
    """One-sided p < 0.05 while the two-sided 95% interval reaches below 0: the verdict carries its reason."""
    result, page = _claims_html(_paired([0.005, 0.0, 0.006, 0.0005, 0.007]))
    (comp,) = result.comparisons
    assert result.verdict == SUPPORTED and comp.ci[0] < 0 < comp.ci[1]
    assert "one-sided: p = " in page and "interval shown reaches past it" in page
    clear, page = _claims_html(_paired([0.01, 0.011, 0.012, 0.0105, 0.0115]))
    assert clear.verdict == SUPPORTED and "one-sided" not in page  # an interval clear of 0 needs no note


def test_two_seeds_are_flagged_as_one_degree_of_freedom():
    _, page = _claims_html(_paired([0.01, 0.02]))
    assert "2 seeds: 1 degree of freedom" in page
    _, page = _claims_html(_paired([0.01, 0.02, 0.015]))
    assert "1 degree of freedom" not in page


def test_the_page_explains_bold_rows_and_each_sides_own_interval(built_report):
    page = built_report.page.read_text()
    assert "Bold rows: the baseline, plain training (alpha = 0)" in page
    assert "control alpha = 0: m = " in page and "conditions are compared with this one control" in page


def test_monoloss_runs_left_out_of_accuracy_vs_selectivity_are_said_to_be(tmp_path):
    root = write_sweep(tmp_path / "s", alphas=(-1.0, 0.0), seeds=(0, 1, 2), diverged=False)
    for seed in (0, 1, 2):
        run = write_run(root, 0.0, seed, acc=0.9, si=0.3, name=f"lambda0.3_seed{seed}",
                        final={"kind": "monoloss", "lambda": 0.3})
        assert run.is_dir()
    page = build_report(root, n_boot=100).page.read_text()
    assert "The 3 MonoLoss runs (lambda ≠ 0) are not drawn here" in page


def test_no_figure_is_cut_at_its_edge(built_report):
    """Saved tight with a margin: the outer border of every PNG is background, so no colour-bar label, legend
    or title runs off the picture (at 1280 px the page shows them whole)."""
    for path in built_report.figures.values():
        image = np.asarray(Image.open(path).convert("L"), dtype=float)
        border = np.concatenate([image[:4].ravel(), image[-4:].ravel(), image[:, :4].ravel(), image[:, -4:].ravel()])
        assert border.min() > 200, f"{path.name}: something is drawn at the picture's edge"
