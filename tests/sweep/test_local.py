"""Real runs in subprocesses through the local executor, and the CLI sub-command."""

import argparse
import json
import operator

import pandas as pd
import pytest

from selectivity.sweep import JobFailed, LocalExecutor, SweepError
from selectivity.sweep.cli import add_sweep_parser
from selectivity.config import ConfigError


def sweep_cli(argv):
    """``selectivity sweep ...`` as the main CLI runs it (user errors: one line, exit 2)."""
    parser = argparse.ArgumentParser(prog="selectivity")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sweep", *argv])
    try:
        return args.func(args)
    except (SweepError, ConfigError) as err:
        assert "\n" not in str(err)
        return 2


def _jobs(out):
    manifest = json.loads((out / "sweep.json").read_text())
    return {run_id: [j["job_id"] for j in run["jobs"]] for run_id, run in manifest["runs"].items()}


@pytest.mark.slow
def test_two_real_runs_in_local_processes_then_nothing_on_rerun(tmp_path, tiny, capsys):
    out = tmp_path / "sweep"
    argv = ["demo", "--alphas=-1,0", "--seeds", "0", "--out", str(out), "--executor", "local", "--jobs", "2",
            "--no-progress", "--set", *tiny]
    assert sweep_cli(argv) == 0
    printed = capsys.readouterr().out
    assert "completed" in printed and "results.csv" in printed
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2 and (table.status == "completed").all()
    assert table.alpha.tolist() == [-1.0, 0.0] and table.model.tolist() == ["resnet_demo"] * 2
    assert table.test_acc.between(0, 1).all() and table.wall_seconds.gt(0).all()
    assert [c for c in table.columns if c.startswith("si/")]
    assert pd.read_parquet(out / "results.parquet").shape == table.shape
    jobs = _jobs(out)
    assert len(jobs) == 2 and all(len(ids) == 1 for ids in jobs.values())
    finals = {p: p.stat().st_mtime_ns for p in out.glob("*/final.json")}
    assert len(finals) == 2

    assert sweep_cli(argv) == 0  # the same command again: nothing submitted, nothing trained
    assert _jobs(out) == jobs
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/final.json")} == finals
    assert pd.read_csv(out / "results.csv").equals(table)


def test_a_local_job_that_raises_gives_its_error(tmp_path):
    executor = LocalExecutor(tmp_path / "logs")
    good, bad = executor.submit_all(operator.truediv, [(1, 4), (1, 0)])
    assert good.result() == 0.25
    with pytest.raises(JobFailed, match="ZeroDivisionError: division by zero") as info:
        bad.result()
    assert "Traceback" in info.value.trace


@pytest.mark.parametrize("argv, message", [
    (["--alphas", "", "--seeds", "0"], "alpha list is empty"),
    (["--alphas", "1,,2", "--seeds", "0"], "empty item"),
    (["--alphas=-1,0", "--seeds", "zero"], "seed 'zero'"),
    (["--alphas", "0", "--seeds", "0", "--executor", "cloud"], "unknown executor"),
    (["--alphas", "0", "--seeds", "0", "--set", "slurm.partitio=gpu", "--executor", "slurm"], "slurm.partitio"),
    (["--alphas", "0", "--seeds", "0", "--set", "train.epoch=2"], "train.epoch"),
])
def test_cli_user_errors_are_one_line(tmp_path, argv, message, capsys):
    out = tmp_path / "s"
    parser = argparse.ArgumentParser(prog="selectivity")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sweep", "demo", "--out", str(out), "--no-progress", *argv])
    with pytest.raises((SweepError, ConfigError), match=message) as info:
        args.func(args)
    assert "\n" not in str(info.value) and not out.exists()


def test_selectivity_cli_runs_the_sweep(tmp_path, capsys, monkeypatch):
    """Through `selectivity` itself, once cli.py registers the sub-command with add_sweep_parser."""
    from selectivity import cli

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "sweep" not in commands:
        pytest.skip("selectivity.cli does not register `sweep` yet (call add_sweep_parser in build_parser)")
    out = tmp_path / "s"
    assert cli.main(["sweep", "demo", "--alphas", "", "--seeds", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "alpha list is empty" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert cli.main(["sweep", "demo", "--alphas=0", "--seeds", "0", "--out", str(out), "--executor", "slurm"]) == 2
    assert "no 'sbatch' on PATH" in capsys.readouterr().err and not out.exists()
