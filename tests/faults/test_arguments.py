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
