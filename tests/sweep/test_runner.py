"""The sweep loop with the in-process executor and a fake trainer: fast, exact call counts."""

import json

import pandas as pd
import pytest

from selectivity.sweep import SweepError, run_sweep
from selectivity.runs import RunPaths

FAST = ["train.epochs=1"]


def _sweep(out, alphas="-1,0", seeds="0", **kwargs):
    kwargs.setdefault("executor", "debug")
    kwargs.setdefault("progress", False)
    return run_sweep("demo", alphas, seeds, out, overrides=kwargs.pop("overrides", FAST), **kwargs)


def _finals(out):
    return {p.parent.name: (p.stat().st_mtime_ns, p.read_text()) for p in sorted(out.glob("*/final.json"))}


def test_a_sweep_runs_each_run_once_and_writes_its_record(tmp_path, fake_train):
    fake = fake_train()
    outcome = _sweep(tmp_path / "s", alphas="-1,0,1", seeds="0,1")
    assert sorted(fake.calls) == [(a, s) for a in (-1.0, 0.0, 1.0) for s in (0, 1)]
    assert outcome.ok and len(outcome.finished) == 6 and outcome.submitted == 6
    manifest = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert manifest["grid"] == {"alphas": [-1.0, 0.0, 1.0], "seeds": [0, 1]}
    assert manifest["executor"]["name"] == "debug"
    assert "alpha" not in manifest["base_config"]["regularizer"] and manifest["base_config"]["train"]["epochs"] == 1
    assert all(r["status"] == "completed" and len(r["jobs"]) == 1 for r in manifest["runs"].values())
    table = pd.read_csv(tmp_path / "s" / "results.csv")
    assert table[["alpha", "seed"]].values.tolist() == [[a, s] for a in (-1, 0, 1) for s in (0, 1)]
    assert list(table.columns[:14]) == ["alpha", "seed", "model", "dataset", "test_acc", "mean_si", "dead_fraction",
                                         "mean_si_live", "kind", "lambda", "status", "epochs", "train_seconds",
                                         "wall_seconds"]
    assert (table.kind == "si").all() and (table["lambda"] == 0).all()
    assert {"si/a", "si/b"} <= set(table.columns) and (table.status == "completed").all()
    assert (table.wall_seconds >= 0).all()
    assert pd.read_parquet(tmp_path / "s" / "results.parquet").equals(outcome.results)


def test_an_interrupted_sweep_redoes_nothing_finished(tmp_path, fake_train):
    fake = fake_train(interrupt_after=1)
    with pytest.raises(KeyboardInterrupt):
        _sweep(tmp_path / "s", alphas="-1,0,1")
    assert fake.calls == [(-1.0, 0), (0.0, 0)]
    finals = _finals(tmp_path / "s")
    assert len(finals) == 1

    fake = fake_train()
    outcome = _sweep(tmp_path / "s", alphas="-1,0,1")
    assert fake.calls == [(0.0, 0), (1.0, 0)]  # only the unfinished runs
    assert outcome.ok and outcome.submitted == 2 and len(outcome.results) == 3
    finals_after = _finals(tmp_path / "s")
    assert {k: finals_after[k] for k in finals} == finals  # the finished run's record is untouched

    fake = fake_train()
    outcome = _sweep(tmp_path / "s", alphas="-1,0,1")
    assert fake.calls == [] and outcome.submitted == 0 and len(outcome.results) == 3
    assert _finals(tmp_path / "s") == finals_after


def test_a_failing_run_is_retried_then_marked_failed_while_the_others_complete(tmp_path, fake_train):
    fake = fake_train(fail_alphas={1.0})
    outcome = _sweep(tmp_path / "s", alphas="0,1", retries=2)
    assert fake.calls.count((1.0, 0)) == 3 and fake.calls.count((0.0, 0)) == 1
    assert not outcome.ok and len(outcome.failed) == 1 and len(outcome.finished) == 1
    (failed_dir,) = [p.parent for p in (tmp_path / "s").glob("*/failed.json")]
    record = json.loads(RunPaths(failed_dir).failed.read_text())
    assert record["error"] == "RuntimeError: boom at alpha 1" and record["attempts"] == 3
    assert "Traceback" in record["trace"] and len(record["jobs"]) == 3
    attempts = RunPaths(failed_dir).attempts.read_text().splitlines()
    assert [json.loads(line)["outcome"] for line in attempts] == ["error"] * 3
    table = outcome.results.set_index("alpha")
    assert table.loc[0.0, "status"] == "completed" and table.loc[1.0, "status"] == "failed"
    assert table.loc[1.0, "error"] == "RuntimeError: boom at alpha 1" and pd.isna(table.loc[1.0, "test_acc"])

    # The same command again: the failed run gets a fresh set of retries, the finished one nothing.
    fake = fake_train()
    outcome = _sweep(tmp_path / "s", alphas="0,1", retries=2)
    assert fake.calls == [(1.0, 0)] and outcome.ok
    assert not RunPaths(failed_dir).failed.exists()
    assert (outcome.results.status == "completed").all()


def test_retries_zero_fails_at_the_first_error(tmp_path, fake_train):
    fake = fake_train(fail_alphas={0.0})
    outcome = _sweep(tmp_path / "s", alphas="0", retries=0)
    assert fake.calls == [(0.0, 0)] and outcome.failed


def test_a_sweep_directory_of_another_config_is_refused_untouched(tmp_path, fake_train):
    fake_train()
    _sweep(tmp_path / "s")
    before = _finals(tmp_path / "s")
    manifest = (tmp_path / "s" / "sweep.json").read_text()
    fake = fake_train()
    with pytest.raises(SweepError, match=r"different config \(train.epochs: 1 there, 2 now\)") as info:
        _sweep(tmp_path / "s", overrides=["train.epochs=2"])
    assert "\n" not in str(info.value)
    assert fake.calls == [] and _finals(tmp_path / "s") == before
    assert (tmp_path / "s" / "sweep.json").read_text() == manifest
    # alpha and seed are the grid's: a base config that sets them is the same sweep
    outcome = _sweep(tmp_path / "s", overrides=FAST + ["regularizer.alpha=3", "train.seed=7"])
    assert fake.calls == [] and outcome.ok


def test_a_grid_can_grow_in_the_same_directory(tmp_path, fake_train):
    fake_train()
    _sweep(tmp_path / "s", alphas="0")
    fake = fake_train()
    outcome = _sweep(tmp_path / "s", alphas="0,2", seeds="0")
    assert fake.calls == [(2.0, 0)] and len(outcome.results) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"alphas": ""}, "alpha list is empty"),
    ({"alphas": "1,x"}, "alpha 'x' is not a number"),
    ({"seeds": "0,a"}, "seed 'a' is not an integer"),
    ({"executor": "cloud"}, "unknown executor 'cloud'; choose one of debug, local, slurm"),
    ({"executor": "local", "jobs": 0}, "--jobs must be >= 1"),
    ({"retries": -1}, "--retries must be"),
    ({"executor": "local", "wait": False}, "--no-wait needs --executor slurm"),
])
def test_bad_inputs_fail_before_anything_is_written(tmp_path, fake_train, kwargs, message):
    fake = fake_train()
    with pytest.raises(SweepError, match=message) as info:
        _sweep(tmp_path / "s", **kwargs)
    assert "\n" not in str(info.value) and fake.calls == [] and not (tmp_path / "s").exists()


def test_slurm_without_sbatch_is_a_clear_error(tmp_path, fake_train, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    fake = fake_train()
    with pytest.raises(SweepError, match="no 'sbatch' on PATH") as info:
        _sweep(tmp_path / "s", executor="slurm")
    assert "\n" not in str(info.value) and fake.calls == [] and not (tmp_path / "s").exists()


def test_a_second_sweep_command_on_the_same_directory_is_refused(tmp_path, fake_train):
    from selectivity.runs import RunBusy, exclusive
    from selectivity.sweep.manifest import SweepPaths

    fake = fake_train()
    paths = SweepPaths(tmp_path / "s")
    with exclusive(paths.lock, "busy"):
        # flock locks are per open file: a second open in this process conflicts like another process
        with pytest.raises(RunBusy, match="another sweep command is running"):
            _sweep(tmp_path / "s")
    assert fake.calls == []


def test_a_sweep_over_per_epoch_alpha_schedules(tmp_path, fake_train):
    """Ranadive's conditions as a grid: each schedule sets its run's alpha; ids differ per schedule."""
    fake = fake_train()
    outcome = run_sweep("demo", None, "0,1", tmp_path / "s", executor="debug", progress=False,
                        overrides=[*FAST, "train.epochs=2"], schedules=["0*2", "-2*2", "0*1 -2*1"])
    assert outcome.ok and outcome.submitted == 6
    assert sorted(fake.calls) == sorted([(0.0, 0), (0.0, 1), (-2.0, 0), (-2.0, 1), (-2.0, 0), (-2.0, 1)])
    manifest = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert len(manifest["runs"]) == 6 and len({e["dir"] for e in manifest["runs"].values()}) == 6
    with pytest.raises(SweepError, match="not both"):
        run_sweep("demo", "-1", "0", tmp_path / "t", executor="debug", progress=False, schedules=["0*8"])
    with pytest.raises(SweepError, match="alpha schedule 'x\\*1'"):
        run_sweep("demo", None, "0", tmp_path / "t", executor="debug", progress=False, schedules="x*1")


def test_a_sweep_of_both_knobs_trains_monoloss_runs_and_tables_them_by_kind(tmp_path, tiny):
    """A real (tiny) sweep: alpha and lambda runs side by side; sweep.json and results.csv say which is which."""
    outcome = run_sweep("demo", "0,-1", "0", tmp_path / "s", executor="debug", progress=False, overrides=tiny,
                        lambdas="0.5")
    assert outcome.ok
    table = outcome.results
    assert table[["kind", "alpha", "lambda"]].values.tolist() == [["monoloss", 0.0, 0.5], ["si", -1.0, 0.0],
                                                                  ["si", 0.0, 0.0]]
    assert table["mean_monoscore"].between(0, 1).all()
    manifest = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert manifest["grid"] == {"alphas": [-1.0, 0.0], "seeds": [0], "lambdas": [0.5]}
    mono = [e for e in manifest["runs"].values() if e.get("kind") == "monoloss"]
    assert len(mono) == 1 and mono[0]["lambda"] == 0.5 and mono[0]["dir"].startswith("lambda+0.5_seed0-")
    metrics = (tmp_path / "s" / mono[0]["dir"] / "metrics.jsonl").read_text()
    assert '"batch_monoscore"' in metrics and '"lambda_now": 0.5' in metrics
    # The report draws alpha figures from the SI runs and the MonoLoss runs against lambda,
    # never a MonoLoss run as a point at alpha 0 (nor a panel per lambda).
    from selectivity.report import build_report
    from selectivity.report.cells import cell_columns
    from selectivity.report.html import split_knobs

    alpha_runs, lambda_runs = split_knobs(table)
    assert sorted(alpha_runs["alpha"]) == [-1.0, 0.0] and sorted(lambda_runs["lambda"]) == [0.0, 0.5]
    assert not [c for c in cell_columns(alpha_runs) if c.startswith("regularizer.")]
    report = build_report(tmp_path / "s")
    assert {"accuracy_vs_alpha", "accuracy_vs_lambda", "monoscore_vs_lambda"} <= set(report.figures)
    assert "MonoLoss lambda = 0.5" in report.page.read_text()


@pytest.mark.parametrize("executor", ["local", "slurm"])
def test_a_sweep_on_data_that_is_not_there_is_refused_before_its_directory_or_a_job(tmp_path, executor):
    from selectivity.config import ConfigError
    from selectivity.sweep import run_sweep

    out = tmp_path / "sweep"
    with pytest.raises(ConfigError, match=r"data.source '.*/no-such-data' does not exist"):
        run_sweep("demo", "-1,0", "0", out, executor=executor, overrides=[f"data.source={tmp_path / 'no-such-data'}"],
                  progress=False)
    assert not out.exists()
