"""`selectivity compare`: the largest relative difference over every tensor of two runs' weights."""

from __future__ import annotations

import math

import pytest
import torch

from selectivity.cli import main
from selectivity.commands.compare import compare_weights
from selectivity.runs import RunPaths, save_tensors


def _weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"conv.weight": torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64),
            "bn.running_var": torch.rand(4, generator=g, dtype=torch.float64) + 0.5,
            "bn.num_batches_tracked": torch.tensor(7)}


def _run(root, tensors) -> str:
    root.mkdir(parents=True)
    save_tensors(RunPaths(root).weights, tensors)
    return str(root)


def _reference(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / max(||a||, ||b||), written out element by element."""
    a, b = a.flatten().tolist(), b.flatten().tolist()
    diff = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    scale = max(math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b)))
    return diff / scale if scale else 0.0


def test_equal_runs_exit_0_and_a_moved_tensor_is_named_with_its_difference(tmp_path, capsys):
    base = _weights()
    a = _run(tmp_path / "a", base)
    same = _run(tmp_path / "same", {k: v.clone() for k, v in base.items()})
    assert main(["compare", a, same]) == 0
    out = capsys.readouterr().out
    assert "compared 3 tensors" in out and "equal within rtol 1e-09: largest relative difference 0.000e+00" in out

    moved = {k: v.clone() for k, v in base.items()}
    moved["bn.running_var"][2] += 1e-6  # a batch-norm buffer counts as much as a weight
    b = _run(tmp_path / "b", moved)
    expected = _reference(base["bn.running_var"], moved["bn.running_var"])
    assert main(["compare", a, b, "--rtol", "1e-9"]) == 1
    out = capsys.readouterr().out
    assert f"NOT equal within rtol 1e-09: 1 of 3 tensors differ by more (largest {expected:.3e}, bn.running_var)" in out
    assert main(["compare", a, b, "--rtol", f"{2 * expected:g}"]) == 0
    assert compare_weights(a, b).differences == pytest.approx(
        {"conv.weight": 0.0, "bn.running_var": expected, "bn.num_batches_tracked": 0.0}, rel=1e-12, abs=0)


def test_a_float32_run_against_its_float64_twin_is_compared_in_float64(tmp_path, capsys):
    base = _weights()
    single = {k: (v.float() if v.is_floating_point() else v) for k, v in base.items()}
    a, b = _run(tmp_path / "a", base), _run(tmp_path / "b", single)
    assert main(["compare", a, b, "--rtol", "1e-12"]) == 1
    out = capsys.readouterr().out
    assert "dtypes float64 and float32" in out
    worst = max(_reference(base[k], single[k].double()) for k in base)
    assert 1e-9 < worst < 1e-7 and f"largest {worst:.3e}" in out


def test_two_sweeps_are_compared_run_by_run(tmp_path, capsys):
    for sweep in ("s", "l"):
        for seed in (0, 1):
            _run(tmp_path / sweep / f"alpha-1_seed{seed}-abc", _weights(seed))
        (tmp_path / sweep / "logs").mkdir()  # not a run: left out
    moved = _weights(1)
    moved["conv.weight"] *= 1 + 1e-3
    save_tensors(RunPaths(tmp_path / "l" / "alpha-1_seed1-abc").weights, moved)
    assert main(["compare", str(tmp_path / "s"), str(tmp_path / "l")]) == 1
    out = capsys.readouterr().out
    assert "of 2 pair(s) of runs" in out and "alpha-1_seed1-abc/conv.weight" in out
    assert f"(largest {1e-3 / (1 + 1e-3):.3e}, alpha-1_seed1-abc/conv.weight)" in out  # over the larger norm


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("not a run", "holds no weights.safetensors"),
    ("other tensors", "hold different tensors (extra.weight in one only)"),
    ("other shape", "conv.weight is (4, 3, 3, 3) in"),
    ("corrupt", "is corrupt"),
    ("sweep and run", "is a sweep directory but"),
    ("other runs", "hold different finished runs (alpha+0_seed0-x in one only)"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, message):
    a = _run(tmp_path / "a", _weights())
    b = tmp_path / "b"
    if case == "not a run":
        b.mkdir()
    elif case == "other tensors":
        _run(b, {**_weights(), "extra.weight": torch.zeros(2)})
    elif case == "other shape":
        _run(b, {**_weights(), "conv.weight": torch.zeros(4, 3, 1, 1, dtype=torch.float64)})
    elif case == "corrupt":
        _run(b, _weights())
        raw = bytearray(RunPaths(b).weights.read_bytes())
        raw[-5] ^= 0xFF  # a byte of a tensor: the header still parses
        RunPaths(b).weights.write_bytes(bytes(raw))
    elif case == "sweep and run":
        _run(b / "alpha-1_seed0-x", _weights())
    elif case == "other runs":
        a = tmp_path / "sa"
        _run(a / "alpha-1_seed0-x", _weights())
        _run(b / "alpha-1_seed0-x", _weights())
        _run(b / "alpha+0_seed0-x", _weights())
        a = str(a)
    assert main(["compare", a, str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("selectivity compare: error:") and message in err and "\n" not in err


def test_a_bad_tolerance_is_refused_by_the_parser(tmp_path, capsys):
    a = _run(tmp_path / "a", _weights())
    for bad in ("-1", "nan", "x"):
        with pytest.raises(SystemExit) as exit_:
            main(["compare", a, a, "--rtol", bad])
        assert exit_.value.code == 2
    assert "expected a finite number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_nan_or_inf_is_a_difference_in_either_order_and_is_named(tmp_path, capsys, poison):
    """One tensor multiplied by NaN (or inf) against its healthy source: NOT equal, exit 1, the tensor named."""
    healthy = _weights()
    sick = {k: v.clone() for k, v in healthy.items()}
    sick["conv.weight"] = sick["conv.weight"] * poison
    a, b = _run(tmp_path / "healthy", healthy), _run(tmp_path / "sick", sick)
    word = "NaN" if math.isnan(poison) else "inf"
    for first, second, side in ((a, b, "B"), (b, a, "A")):
        assert main(["compare", first, second]) == 1
        out = capsys.readouterr().out
        assert f"conv.weight: {word} in {side} (108 of 108 entries)" in out
        assert "NOT equal: 1 of 3 tensors hold NaN or inf, first conv.weight" in out
        assert "equal within" not in out
    # Two runs that both hold NaN where the other does are not equal either.
    assert main(["compare", b, _run(tmp_path / "sick2", {k: v.clone() for k, v in sick.items()})]) == 1
    comparison = compare_weights(a, b)
    assert comparison.differences["conv.weight"] == math.inf and comparison.worst == ("conv.weight", math.inf)
