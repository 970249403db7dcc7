"""Files that are not UTF-8: a one-line error naming the file (exit 2), never a traceback."""

from __future__ import annotations

from .conftest import snapshot

LATIN1_YAML = "name: caf\xe9\ntrain:\n  epochs: 1\n".encode("latin-1")  # byte 0xe9 is not UTF-8 here


def test_config_file_on_the_command_line(tmp_path, cli, one_line):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(LATIN1_YAML)
    code, _, err = cli(["train", bad, "--out", tmp_path / "run", "--no-progress"])
    assert code == 2 and f"{bad} is not UTF-8 text" in one_line(err)
    assert not (tmp_path / "run").exists()
    code, _, err = cli(["sweep", bad, "--alphas", "-1,0", "--seeds", "0", "--out", tmp_path / "sw"])
    assert code == 2 and f"{bad} is not UTF-8 text" in one_line(err)


def test_run_config_yaml_not_utf8(finished_run, cli, one_line):
    config = finished_run / "config.yaml"
    config.write_bytes(config.read_bytes() + b"# \xff\xfe\n")
    before = snapshot(finished_run)
    code, _, err = cli(["measure", finished_run, "--no-progress"])
    assert code == 2 and f"{config} is not UTF-8 text" in one_line(err)
    code, _, err = cli(["train", "demo", "--out", finished_run, "--no-progress"])
    assert code == 2 and f"{config} is not UTF-8 text" in one_line(err)
    assert snapshot(finished_run) == before  # the finished run is untouched


def test_metrics_jsonl_not_utf8(finished_run, cli, one_line):
    metrics = finished_run / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes() + b'{"epoch": 1, "note": "\xff"}\n')
    sweep = finished_run.parent
    before = snapshot(finished_run)
    code, _, err = cli(["report", sweep, "--bootstrap", "200"])
    assert code == 2 and f"{metrics} is not UTF-8 text" in one_line(err)
    assert snapshot(finished_run) == before


def test_claims_file_not_utf8(finished_run, tmp_path, cli, one_line):
    claims = tmp_path / "claims.yaml"
    claims.write_bytes(LATIN1_YAML)
    code, _, err = cli(["report", finished_run.parent, "--claims", claims, "--bootstrap", "200"])
    assert code == 2 and f"claims file {claims} is not UTF-8 text" in one_line(err)
