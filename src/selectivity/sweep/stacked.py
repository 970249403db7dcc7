"""The ``stacked`` executor: the runs of a sweep that share model, data and recipe train as one stack.

``selectivity sweep ... --executor stacked [--stack M]`` groups the runs by everything but
alpha and seed (:func:`~selectivity.train.stacked.stack_key`), cuts each group into stacks of
at most M networks (default: the whole group) and trains each stack in this process with
:func:`~selectivity.train.stacked.train_stacked`. A stack that runs out of GPU memory is
split in two and each half trained (resuming from any checkpoints), down to single networks.
Every run still gets its own run directory, ``attempts.jsonl`` line and result, so the sweep's
driver, retries, manifest and results table work as for any executor. A model that cannot be stacked is refused before anything trains.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..runs import RunPaths
from ..config import config_from_dict
from ..train.stacked import prepare_stack, stack_key, train_stacked
from .executors import DebugJob, Executor, JobFailed, last_line
from .grid import SweepError
from .manifest import now

__all__ = ["StackedExecutor", "group_stacks", "run_stack"]


def group_stacks(args: Sequence[tuple[dict, str]], size: int | None) -> list[list[int]]:
    """Indices of ``args`` (config dict, run dir) cut into stacks: equal stack keys, at most ``size`` each."""
    groups: dict[str, list[int]] = {}
    for index, (config, _) in enumerate(args):
        groups.setdefault(stack_key(config), []).append(index)
    stacks = []
    for members in groups.values():
        step = size or len(members)
        stacks.extend(members[i : i + step] for i in range(0, len(members), step))
    return stacks


def run_stack(config_dicts: list[dict], run_dirs: list[str], data=None) -> list[dict]:
    """Train one stack into its run directories; one ``attempts.jsonl`` line per run.

    ``wall_seconds`` of each line is the run's share of the stack's wall time (the stack's
    time divided by its size), so the results table's sums stay honest.
    """
    configs = [config_from_dict(c) for c in config_dicts]
    paths = [RunPaths(Path(d)) for d in run_dirs]
    for p in paths:
        p.root.mkdir(parents=True, exist_ok=True)
    attempt = {"started": now(), "host": socket.gethostname(), "pid": os.getpid(), "job_id": None,
               "stack": len(configs)}
    started = time.perf_counter()
    outcomes: list[dict] = [dict(attempt) for _ in configs]
    try:
        # As run_one: wait for a worker of an earlier, killed command that may still hold a run.
        finals = train_stacked(configs, [p.root for p in paths], progress=False, data=data, wait_for_lock=True)
        for outcome, final in zip(outcomes, finals):
            outcome["outcome"] = final.get("status", "completed")
        return finals
    except BaseException as err:
        for outcome in outcomes:
            outcome.update(outcome="error", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        wall = time.perf_counter() - started
        for p, outcome in zip(paths, outcomes):
            outcome.update(wall_seconds=wall / len(paths), stack_wall_seconds=wall)
            with p.attempts.open("a") as f:
                f.write(json.dumps(outcome) + "\n")


def _fitting(members: list[int], args: list[tuple], data) -> list[dict]:
    """run_stack, halving the stack while it does not fit in GPU memory."""
    try:
        return run_stack([args[i][0] for i in members], [args[i][1] for i in members], data=data)
    except torch.cuda.OutOfMemoryError:
        if len(members) == 1:
            raise
    torch.cuda.empty_cache()
    half = len(members) // 2
    return _fitting(members[:half], args, data) + _fitting(members[half:], args, data)


class StackedExecutor(Executor):
    """Trains the runs it is given as stacks, in this process; ``size``: networks per stack (None: all)."""

    name = "stacked"
    max_in_flight = None  # the driver hands over every waiting run at once, so they can be grouped
    poll_seconds = 0.0

    def __init__(self, size: int | None = None) -> None:
        if size is not None and size < 1:
            raise SweepError(f"--stack must be >= 1, got {size}")
        self.size = size
        self._stacks = 0

    def submit(self, fn: Callable, *args: Any) -> DebugJob:
        return self.submit_all(fn, [args])[0]

    def submit_all(self, fn: Callable, args: Sequence[tuple]) -> list[DebugJob]:
        args = list(args)
        stacks = group_stacks(args, self.size)
        # Every stack's model is checked (and its data loaded) before any of them trains.
        prepared = [prepare_stack(config_from_dict(args[members[0]][0])) for members in stacks]
        jobs: list[DebugJob | None] = [None] * len(args)
        for members, (data, _) in zip(stacks, prepared):
            job_id = f"stack-{self._stacks}"
            self._stacks += 1
            try:
                finals = _fitting(members, args, data)
            except Exception:  # KeyboardInterrupt stops the sweep, as it should
                import traceback

                trace = traceback.format_exc()
                for i in members:
                    jobs[i] = DebugJob(f"{job_id}.{i}", error=JobFailed(last_line(trace), trace))
                continue
            for i, final in zip(members, finals):
                jobs[i] = DebugJob(f"{job_id}.{i}", value=final)
        return jobs  # type: ignore[return-value]
