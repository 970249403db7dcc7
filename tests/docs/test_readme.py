"""The README's commands, run in order as a new user would after `make demo`, with small settings.

Every ```bash block of README.md is read top to bottom; each command (backslash continuations
joined, comments dropped) runs in one fresh working directory through the CLI itself, so a
command the README shows but the tool refuses fails here. Small settings keep it to minutes:
training commands get a few images and one epoch appended (`--set` overrides, which win over the
command's own), evaluations a small `--limit`. Commands that need what this machine cannot give
are listed in SKIP with the test that covers them instead.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"

pytestmark = pytest.mark.slow

#: Commands that cannot run here, and where they are tested instead.
SKIP = {
    "--executor slurm": "needs a SLURM cluster: tests/sweep/test_slurm.py runs one",
    "srun": "needs a SLURM cluster: tests/sweep/test_slurm.py runs one",
}

SMALL_TRAIN = ["data.train_per_class=20", "data.test_limit=100", "train.epochs=1", "train.batch_size=50",
               "train.threads=1", "regularizer.warmup_epochs=0"]


def readme_commands(text: str) -> list[str]:
    """Commands of the ```bash blocks, in order: continuations joined, comments and blanks dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def small(argv: list[str], cache: Path) -> list[str]:
    """The same command with small settings (our overrides come last, so they win)."""
    data = str(SHARED_CIFAR) if SHARED_CIFAR.exists() else "demo"
    argv = [a.replace("../shared/data/cifar10-jpeg.zip", data) for a in argv]
    sub = argv[1] if len(argv) > 1 else ""
    if sub in ("train", "sweep", "demo"):
        argv = argv + ["--set", f"data.cache_dir={cache}", *SMALL_TRAIN, f"train.epochs={_schedule_epochs(argv)}"]
        if sub == "sweep":  # the first two of its seeds: a confirmation's seeds stay disjoint from the sweep's
            argv = _replace_option(argv, "--seeds", ",".join(_option(argv, "--seeds").split(",")[:2]))
    if sub in ("robustness", "analyze"):  # a smaller limit, still one per limit the README gives
        limit = small_limit(_option(argv, "--limit"))
        if "--population" in argv:  # a probe needs at least as many training images as a layer has units (64)
            limit = max(limit, 80)
        argv = _replace_option(argv, "--limit", str(limit))
        if sub == "robustness":
            argv += ["--severities", "1", "--eps", "1/255,4/255"]
    return argv + (["--no-progress"] if sub in ("train", "sweep", "demo", "robustness", "analyze", "measure")
                   and "--no-progress" not in argv else [])


def _schedule_epochs(argv: list[str]) -> int:
    """One epoch, or as many as the command's alpha schedules spell out (a schedule must cover every
    epoch of training: the command would be refused with fewer)."""
    from selectivity.core.schedule import PerEpochAlpha

    texts = [a.split("=", 1)[1] for a in argv if a.startswith("regularizer.schedule=")]
    given = _option(argv, "--schedules")
    texts += given.split(",") if given else []
    return max((PerEpochAlpha.parse(t).epochs for t in texts), default=1)


def small_limit(limit: str | None) -> int:
    """The README's --limit scaled down (500 -> 41, 200 -> 16): two calls on different image sets stay
    on different ones, so the walk-through checks that neither loses the other's results."""
    return max(8, int(limit) // 12) if limit else 40


def _option(argv: list[str], option: str) -> str | None:
    for i, a in enumerate(argv):
        if a == option and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(option + "="):
            return a.split("=", 1)[1]
    return None


def _replace_option(argv: list[str], option: str, value: str) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == option:
            skip = True
            continue
        if a.startswith(option + "="):
            continue
        out.append(a)
    return out + [option, value]


def test_the_readme_shows_runnable_commands_in_order(tmp_path):
    commands = readme_commands(README.read_text())
    assert any(c.startswith("selectivity demo") or c == "make demo" for c in commands)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")  # as in a clone
    cache = tmp_path / "cache"
    ran, evaluated = 0, []
    for command in commands:
        if any(key in command for key in SKIP):
            continue
        argv = shlex.split(command)
        if argv == ["make", "demo"]:  # what it runs, without setting up .venv (the tests run in it)
            argv = ["selectivity", "demo"]
        elif argv[0] == "make":
            continue
        if argv[0] == "python":
            argv[0] = sys.executable
        elif argv[0] == "selectivity":
            argv = [sys.executable, "-m", "selectivity.cli", *small(argv, cache)[1:]]
        elif argv[0] == "torchrun":  # torchrun [its options] -m selectivity SUBCOMMAND ...
            at = argv.index("-m")
            argv = [sys.executable, "-m", "torch.distributed.run", *argv[1:at], "-m", "selectivity",
                    *small(["selectivity", *argv[at + 2:]], cache)[1:]]
        else:
            pytest.fail(f"README command {command!r}: the walk-through knows no such program")
        done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"README command failed: {command}\n{done.stderr[-3000:]}"
        ran += 1
        if len(argv) > 3 and argv[3] == "robustness":  # python -m selectivity.cli robustness RUN ...
            evaluated.append((work / argv[4], int(_option(argv, "--limit"))))
    assert ran >= 8
    # Followed top to bottom, the README loses no result: every robustness call's image set is still there.
    for run, limit in evaluated:
        table = pd.read_csv(run / "robustness.csv")
        assert (table["n"] == limit).any(), f"the robustness results of {run.name} on {limit} images were lost"


def test_the_own_training_loop_snippet_runs_as_pasted(tmp_path):
    """The README's own-loop block, pasted into a fresh Python as it stands: it needs nothing defined
    before it, and its alpha after 2 epochs is the warm-up's -0.40 the text says."""
    text = README.read_text()
    section = text[text.index("## In your own training loop"):]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "alpha now -0.40" in done.stdout
    assert re.search(r"mean SI 0\.\d{3}, dead units \d+\.\d%", done.stdout)


def test_an_example_that_shows_the_warm_up_trains_with_an_alpha():
    """A warm-up of alpha 0 does nothing: every README command that sets regularizer.warmup_epochs also sets a
    non-zero alpha (or lambda), so the example shows what it says."""
    shown = [c for c in readme_commands(README.read_text()) if "regularizer.warmup_epochs" in c]
    assert shown
    for command in shown:
        argv = shlex.split(command)
        alpha = _option(argv, "--alpha") or next((a.split("=", 1)[1] for a in argv
                                                 if a.startswith(("regularizer.alpha=", "regularizer.lambda="))), "0")
        assert float(alpha) != 0, f"{command}: the warm-up of alpha 0 does nothing"
