"""Arguments as people type them: several --set KEY=VALUE everywhere, negative number lists."""

from __future__ import annotations

import json

import pytest
import yaml

from selectivity.cli import _join_numbers, build_parser


def _parse(argv):
    return build_parser().parse_args(_join_numbers(argv))


def test_set_takes_several_pairs_in_train_sweep_and_demo():
    expected = ["train.epochs=1", "train.batch_size=50"]
    assert _parse(["train", "demo", "--set", *expected]).set == expected
    assert _parse(["sweep", "demo", "--alphas", "0", "--seeds", "0", "--out", "x", "--set", *expected]).set == expected
    assert _parse(["demo", "--set", *expected]).set == expected
    # and repeated --set still adds up
    assert _parse(["train", "demo", "--set", expected[0], "--set", expected[1]]).set == expected


@pytest.mark.parametrize("typed", [["-1,0,1"], ["-1", "0", "1"], ["-1,", "0,", "1"], ["-1,0", "1"]])
def test_negative_alpha_lists_are_accepted(typed):
    args = _parse(["sweep", "demo", "--alphas", *typed, "--seeds", "0,1", "--out", "x"])
    assert ",".join(args.alphas).split(",") == ["-1", "0", "1"]
    assert _parse(["demo", "--alphas", *typed]).alphas == [-1.0, 0.0, 1.0]


def test_single_number_options_take_negative_exponents():
    args = _parse(["train", "demo", "--alpha", "-1e-3", "--seed", "2", "--set", "train.epochs=1"])
    assert args.alpha == -1e-3 and args.seed == 2 and args.set == ["train.epochs=1"]


def test_sweep_through_main_reads_every_alpha_and_seed(tmp_path, cli, one_line):
    # An invalid last alpha shows that the whole typed list reached the grid (no argparse error).
    code, _, err = cli(["sweep", "demo", "--alphas", "-1,0", "oops", "--seeds", "0", "--out", tmp_path / "sw"])
    assert code == 2
    code, _, err = cli(["sweep", "demo", "--alphas", "-1,0,-1", "--seeds", "0", "--out", tmp_path / "sw"])
    assert code == 2 and "alpha -1 appears twice" in one_line(err)
    assert not (tmp_path / "sw").exists()


def test_sweep_set_pairs_all_apply(tmp_path, cli, one_line):
    code, _, err = cli(["sweep", "demo", "--alphas", "-1,0", "--seeds", "0", "--out", tmp_path / "sw",
                        "--set", "train.epochs=1", "train.device=gpu0"])
    assert code == 2 and "train.device" in one_line(err) and "gpu0" in err
    assert not (tmp_path / "sw").exists()  # refused before the sweep directory was made


def test_train_with_several_sets_and_a_negative_alpha(tmp_path, cli, tiny_sets):
    out = tmp_path / "run"
    code, _, err = cli(["train", "demo", "--alpha", "-1e-3", "--out", out, "--no-progress", *tiny_sets,
                        "--set", "optim.lr=0.05", "train.seed=4"])
    assert code == 0, err
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["regularizer"]["alpha"] == -1e-3 and config["optim"]["lr"] == 0.05
    assert config["train"]["seed"] == 4 and config["train"]["epochs"] == 1 and config["data"]["test_limit"] == 50
    assert json.loads((out / "final.json").read_text())["alpha"] == -1e-3


def test_schedules_starting_with_a_minus_are_accepted():
    from selectivity.cli import _join_numbers

    assert _join_numbers(["sweep", "demo", "--schedules", "-5*8,0*2 -5*6", "--seeds", "0"]) == [
        "sweep", "demo", "--schedules=-5*8,0*2 -5*6", "--seeds", "0"]
    assert _join_numbers(["sweep", "--schedules", "0*8", "-5*8"]) == ["sweep", "--schedules=0*8,-5*8"]


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1234567890123456789012345"])
def test_a_seed_out_of_range_is_refused_before_the_run_directory_exists(tmp_path, cli, one_line, seed):
    """A seed numpy and torch cannot take is refused by the config check, so nothing is written and the
    same directory is free for the corrected command."""
    code, _, err = cli(["train", "demo", "--seed", seed, "--out", tmp_path / "run", "--no-progress"])
    assert code == 2 and "train.seed must be an integer in [0, 2**32)" in one_line(err)
    assert not (tmp_path / "run").exists()
    code, _, err = cli(["sweep", "demo", "--alphas", "0", "--seeds", seed.lstrip("-"), "--out", tmp_path / "sw",
                        "--no-progress"])
    if seed != "-1":  # a sweep's seeds are digits; the 25-digit one used to die writing results.parquet
        assert code == 2 and "train.seed must be an integer in [0, 2**32)" in one_line(err)
        assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("args, words", [
    (["--size", "0"], "argument --size: expected an image side in pixels from 1 to 4096, got '0'"),
    (["--size", "-1"], "from 1 to 4096, got '-1'"),
    (["--size", "100000"], "from 1 to 4096, got '100000'"),
    (["--crop-fraction", "0"], "argument --crop-fraction: expected a fraction in (0, 1]"),
    (["--device", "bogus"], "--device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'bogus'"),
])
def test_measure_size_and_device_mistakes_are_one_line(tmp_path, capsys, one_line, args, words):
    from selectivity.cli import main

    argv = ["measure", "--model", "resnet_demo", "--weights", str(tmp_path / "w.safetensors"), "--data", "demo",
            "--out", str(tmp_path / "m"), *args, "--no-progress"]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusal, exit 2
        code = exit_.code
    assert code == 2 and words in one_line(capsys.readouterr().err)
    assert not (tmp_path / "m").exists()


def test_measure_on_a_cuda_device_this_machine_lacks(tmp_path, cli, one_line, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = cli(["measure", "--model", "resnet_demo", "--weights", tmp_path / "w.safetensors", "--data", "demo",
                        "--out", tmp_path / "m", "--device", "cuda", "--no-progress"])
    assert code == 2 and "--device is 'cuda' but no CUDA device is available" in one_line(err)


@pytest.mark.parametrize("content, words", [("{}", "an object without a status"), ("[1, 2]", "a JSON list"),
                                             ('"done"', "a JSON str")])
def test_a_report_on_a_final_json_that_is_not_a_runs_is_one_line(tmp_path, cli, one_line, content, words):
    run = tmp_path / "sweep" / "r"
    run.mkdir(parents=True)
    (run / "final.json").write_text(content)
    code, _, err = cli(["report", tmp_path / "sweep"])
    assert code == 2 and f"final.json is {words}, not the final.json training writes" in one_line(err)
