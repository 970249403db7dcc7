"""Run a grid of (alpha, seed) through an executor: idempotent, resumable, retried.

``run_sweep`` is what ``selectivity sweep`` calls. Re-running it on the same directory:

- never runs a finished run again (``final.json`` present, completed or diverged);
- resumes a partial run from its last epoch checkpoint (``train`` does that itself);
- does not resubmit a run whose SLURM job from an earlier command is still queued or
  running: it waits for that job instead;
- gives a run that failed before a fresh set of retries.

A run that raises (or whose job dies) is retried up to ``retries`` times, resuming from its
checkpoint each time; after that it gets a ``failed.json`` and the others go on.
alpha < 0 discourages selectivity, alpha > 0 encourages it.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ..config import Config, ConfigError, config_from_dict, config_to_dict
from ..runs import RunPaths, atomic_write, read_json, write_text
from ..train.distributed import env_from_submitit, teardown
from ..train.trainer import train
from .backends import make_executor
from .executors import PARENT_PID_ENV, Executor, JobFailed, last_line
from .grid import GridRun, SweepError, base_config_dict, load_sweep_config, make_grid
from ..runs import exclusive
from .manifest import Manifest, SweepPaths, now
from .results import collect_results

__all__ = ["run_one", "run_sweep", "SweepOutcome"]

_QUEUED = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED"})


# -- the job: one run ------------------------------------------------------------------------


def _job_id() -> str | None:
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")


def _die_with_parent() -> None:
    """A local worker ends with the sweep command that started it, so a killed command leaves no
    training going on in the background (its checkpoints are atomic, its lock dies with it)."""
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or not parent.isdigit():
        return

    def watch(pid: int) -> None:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # alive, under another user: not ours to judge
                pass
            time.sleep(1.0)

    threading.Thread(target=watch, args=(int(parent),), daemon=True, name="watch-sweep-command").start()


def run_one(config_dict: dict, run_dir: str) -> dict:
    """Train one run of a sweep into ``run_dir``; returns its final.json dict.

    What every executor calls: a plain picklable function. It resumes from the run
    directory's last checkpoint, returns a finished run as it is, and appends one line per
    attempt (host, job id, wall seconds, outcome) to ``attempts.jsonl``. Two processes
    never train the same directory at once: the second waits for the first.
    """
    _die_with_parent()
    # A multi-task SLURM job (slurm.nodes / tasks_per_node): every task trains this run as one
    # rank of a DDP group, from the environment torchrun would have set.
    ddp_env = env_from_submitit()
    os.environ.update(ddp_env)
    main = ddp_env.get("RANK", "0") == "0"
    config = config_from_dict(config_dict)
    paths = RunPaths(Path(run_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    attempt = {"started": now(), "host": socket.gethostname(), "pid": os.getpid(), "job_id": _job_id()}
    started = time.perf_counter()
    try:
        # A worker of an earlier, killed sweep command may still hold the run: wait for it
        # (it then finds the run finished, or resumes it) instead of failing the attempt.
        final = train(config, paths.root, progress=False, wait_for_lock=True)
        attempt["outcome"] = final.get("status", "completed")
        return final
    except BaseException as err:
        attempt["outcome"] = "error"
        attempt["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        if ddp_env:
            teardown()
        attempt["wall_seconds"] = time.perf_counter() - started
        if main:  # one line per attempt, from rank 0
            with paths.attempts.open("a") as f:
                f.write(json.dumps(attempt) + "\n")


# -- the sweep -------------------------------------------------------------------------------


@dataclass
class SweepOutcome:
    """What a sweep command left: the results table and which runs ended how."""

    out: Path
    results: pd.DataFrame
    finished: list[str] = field(default_factory=list)  # completed or diverged
    failed: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # still queued or running (wait=False)
    submitted: int = 0  # jobs this command submitted
    csv: Path | None = None
    parquet: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unfinished


def _write_failed(paths: RunPaths, run: GridRun, error: JobFailed, attempts: int, jobs: list[dict]) -> None:
    record = {"status": "failed", "alpha": run.alpha, "kind": run.kind, "lambda": run.lam, "seed": run.seed,
              "model": run.config["model"]["name"],
              "error": error.summary, "attempts": attempts, "jobs": jobs, "time": now(), "trace": error.trace}
    write_text(paths.failed, json.dumps(record, indent=2))


class _Driver:
    """Keeps the executor fed, collects results, retries failures, records everything."""

    def __init__(self, executor: Executor, manifest: Manifest, paths: SweepPaths, retries: int, progress: bool,
                 total: int, done: int, poll_seconds: float | None) -> None:
        self.executor, self.manifest, self.paths, self.retries = executor, manifest, paths, retries
        self.poll_seconds = executor.poll_seconds if poll_seconds is None else poll_seconds
        self.waiting: collections.deque[GridRun] = collections.deque()
        self.active: dict[str, tuple[GridRun, Any]] = {}
        self.attempts: collections.Counter[str] = collections.Counter()
        self.finished: list[str] = []
        self.failed: list[str] = []
        self.submitted = 0
        self.bar = tqdm(total=total, initial=done, desc="sweep", unit="run", disable=not progress, dynamic_ncols=True)

    def log(self, message: str) -> None:
        if self.bar.disable:
            print(message, file=sys.stderr)
        else:
            self.bar.write(message, file=sys.stderr)

    def attach(self, run: GridRun, job_id: str, state: str) -> None:
        self.active[run.id] = (run, self.executor.attach(job_id))
        self.attempts[run.id] += 1
        self.manifest.set_status(run.id, "submitted")
        self.log(f"{run.name}: waiting for SLURM job {job_id} ({state.lower()}) of an earlier sweep command")

    def submit_ready(self) -> None:
        room = len(self.waiting)
        if self.executor.max_in_flight is not None:
            room = min(room, self.executor.max_in_flight - len(self.active))
        batch = [self.waiting.popleft() for _ in range(max(room, 0))]
        if not batch:
            return
        for run in batch:
            RunPaths(self.paths.run_dir(run)).failed.unlink(missing_ok=True)
            self.manifest.set_status(run.id, "queued")
        # The manifest is saved before each submission and after, so a crash in between
        # leaves runs that will simply be submitted again.
        self.manifest.save(self.paths)
        try:
            jobs = self.executor.submit_all(run_one, [(run.config, str(self.paths.run_dir(run))) for run in batch])
        except BaseException as err:
            status = "interrupted" if isinstance(err, KeyboardInterrupt) else "not submitted"
            for run in batch:
                self.manifest.set_status(run.id, status)
            raise
        for run, job in zip(batch, jobs, strict=True):
            self.active[run.id] = (run, job)
            self.attempts[run.id] += 1
            self.submitted += 1
            self.manifest.add_job(run.id, self.executor.name, job.job_id)
        self.manifest.save(self.paths)
        self.update_bar()

    def collect(self) -> bool:
        """Results of the jobs that are done; True if any were."""
        changed = False
        for run_id, (run, job) in list(self.active.items()):
            if not job.done():
                continue
            changed = True
            del self.active[run_id]
            try:
                final = job.result()
            except Exception as err:  # JobFailed, or a result that could not be read
                error = err if isinstance(err, JobFailed) else JobFailed(last_line(str(err)), str(err))
                self.failure(run, error)
            else:
                status = final.get("status", "completed") if isinstance(final, dict) else "completed"
                self.manifest.set_status(run_id, status)
                self.finished.append(run.name)
                self.bar.update(1)
        if changed:
            self.manifest.save(self.paths)
            self.update_bar()
        return changed

    def failure(self, run: GridRun, error: JobFailed) -> None:
        tries = self.attempts[run.id]
        if tries <= self.retries:
            self.log(f"{run.name}: attempt {tries} of {self.retries + 1} failed ({error.summary}); retrying")
            self.waiting.append(run)
            self.manifest.set_status(run.id, "retrying")
            return
        self.log(f"{run.name}: failed after {tries} attempt(s): {error.summary}")
        _write_failed(RunPaths(self.paths.run_dir(run)), run, error, tries, self.manifest.runs[run.id]["jobs"])
        self.manifest.set_status(run.id, "failed")
        self.failed.append(run.name)
        self.bar.update(1)

    def update_bar(self) -> None:
        if self.bar.disable:
            return
        queued = sum(1 for _, job in self.active.values() if job.state in _QUEUED)
        self.bar.set_postfix(running=len(self.active) - queued, queued=queued + len(self.waiting),
                             failed=len(self.failed), refresh=True)

    def run(self) -> None:
        while self.waiting or self.active:
            self.submit_ready()
            if not self.collect() and self.active:
                time.sleep(self.poll_seconds)

    def close(self) -> None:
        self.bar.close()


def _resources(slurm_section: dict, slurm: Any):
    from .slurm import SlurmResources

    if isinstance(slurm, SlurmResources):
        return slurm
    return SlurmResources.from_dict({**slurm_section, **(slurm or {})})


def write_results(paths: SweepPaths, run_dirs: Iterable[Path]) -> tuple[pd.DataFrame, Path, Path | None]:
    """``results.csv`` and ``results.parquet`` over ``run_dirs``, atomically."""
    frame = collect_results(sorted(run_dirs))
    atomic_write(paths.results_csv, lambda tmp: frame.to_csv(tmp, index=False))
    try:
        atomic_write(paths.results_parquet, lambda tmp: frame.to_parquet(tmp, index=False))
    except ImportError as err:  # pyarrow is a dependency, but do not lose the sweep over it
        warnings.warn(f"results.parquet not written ({err}); results.csv has the same table", stacklevel=2)
        return frame, paths.results_csv, None
    return frame, paths.results_csv, paths.results_parquet


def _check_data(config: Config) -> None:
    """The sweep's data must be there before its directory is made or a job submitted."""
    source = config.data.source
    if source != "demo" and not Path(source).expanduser().exists():
        raise ConfigError(f"data.source {source!r} does not exist (here, where the sweep is started): give the "
                          "path of a dataset folder or zip, or 'demo'")


def run_sweep(config: Config | str | Path | dict, alphas: Any, seeds: Any, out: str | Path, *,
              executor: str = "local", jobs: int | None = None, retries: int = 1, overrides: list[str] | None = None,
              slurm: Any = None, wait: bool = True, progress: bool = True,
              poll_seconds: float | None = None, schedules: Any = None, stack: int | None = None,
              lambdas: Any = None) -> SweepOutcome:
    """Train every (alpha, seed) of the grid into ``out``; write ``results.csv`` and ``.parquet``.

    Args:
        config (Config | str | Path | dict): the base config: a preset name, a YAML file (which
            may hold a ``slurm:`` section of resources), a dict or a Config.
        alphas, seeds: ``"-1,0,1"`` or lists. alpha < 0 discourages selectivity, > 0 encourages it.
            ``alphas=None`` with ``schedules``: per-epoch alpha schedules instead (``"0*20,0*5 -20*15"``),
            each run's alpha being its schedule's strongest value. ``alphas=None`` is allowed with
            ``lambdas`` alone.
        out (str | Path): the sweep directory (see :mod:`.manifest`).
        executor (str): ``debug`` (in this process), ``local`` (subprocesses) or ``slurm``.
        jobs (int | None): runs at once (local: processes, default 1; slurm: array parallelism).
        retries (int): extra attempts for a run that fails, each resuming from its checkpoint.
        overrides (list[str]): ``key.sub=value``; ``slurm.KEY=VALUE`` sets a SLURM resource.
        slurm (dict | SlurmResources): SLURM resources, over the config's ``slurm:`` section.
        wait (bool): False: submit and return (SLURM only); run the same call again to collect.
        progress (bool): a progress bar of runs done, running, queued and failed.
        stack (int | None): stacked executor: networks per stack (default: all that share a recipe).
        lambdas: MonoLoss strengths (``"0.03,0.1"``): one ``regularizer.kind: monoloss`` run per
            (lambda, seed) beside the alpha runs, in the same sweep.

    Returns:
        SweepOutcome: the results table (one row per finished or failed run) and run names by outcome.
    """
    # Everything is checked before the sweep directory is touched.
    if isinstance(config, Config):
        config = config_to_dict(config)
    base, slurm_section = load_sweep_config(config, overrides)
    grid = make_grid(base, alphas, seeds, schedules, lambdas)
    _check_data(base)
    if not isinstance(retries, int) or retries < 0:
        raise SweepError(f"--retries must be an integer >= 0, got {retries!r}")
    if not wait and executor != "slurm":
        raise SweepError("--no-wait needs --executor slurm (local runs end with the command)")
    paths = SweepPaths(Path(out))
    resources = _resources(slurm_section, slurm)  # checked always, used by the slurm executor only
    backend = make_executor(executor, paths.logs, jobs, slurm=resources, stack=stack)
    base_dict = json.loads(json.dumps(base_config_dict(base)))

    with exclusive(paths.lock, f"another sweep command is running on {paths.root}"):
        manifest = Manifest.open(paths, base_dict)
        manifest.add(grid, paths)
        manifest.executor = {"name": backend.name, "jobs": jobs, "retries": retries,
                             "slurm": resources.to_dict() if backend.name == "slurm" else None}
        done, todo = [], []
        for run in grid:
            final = RunPaths(paths.run_dir(run)).final
            (done if final.exists() else todo).append(run)
            if final.exists():
                manifest.set_status(run.id, read_json(final).get("status", "completed"))
        alive = _alive_jobs(backend, manifest, todo)
        manifest.save(paths)

        driver = _Driver(backend, manifest, paths, retries, progress, total=len(grid), done=len(done),
                         poll_seconds=poll_seconds)
        try:
            for run in todo:
                if run.id in alive:
                    driver.attach(run, *alive[run.id])
                else:
                    driver.waiting.append(run)
            if wait:
                driver.run()
            else:
                driver.submit_ready()
        finally:
            manifest.save(paths)
            driver.close()
        results, csv, parquet = write_results(paths, manifest.run_dirs(paths))

    finished = [run.name for run in done] + driver.finished
    unfinished = [run.name for run, _ in driver.active.values()]
    return SweepOutcome(out=paths.root, results=results, finished=finished, failed=driver.failed,
                        unfinished=unfinished, submitted=driver.submitted, csv=csv, parquet=parquet)


def _alive_jobs(backend: Executor, manifest: Manifest, todo: list[GridRun]) -> dict[str, tuple[str, str]]:
    """Runs whose SLURM job from an earlier command is still queued or running: id -> (job id, state)."""
    earlier = {}
    for run in todo:
        job = manifest.last_job(run.id)
        if job and job["executor"] == "slurm":
            earlier[run.id] = job["job_id"]
    if not earlier:
        return {}
    if backend.name == "slurm":
        states = backend.alive(list(earlier.values()))
    else:
        import shutil

        from .slurm import ALIVE_STATES, queue_states

        if shutil.which("squeue") is None:
            return {}
        listed = queue_states()
        states = {job_id: listed[job_id] for job_id in earlier.values() if listed.get(job_id) in ALIVE_STATES}
        if states:
            raise SweepError(f"{len(states)} run(s) of this sweep are still queued or running as SLURM jobs "
                             f"({', '.join(sorted(states))}); wait for them, scancel them, or use --executor slurm")
    return {run_id: (job_id, states[job_id]) for run_id, job_id in earlier.items() if job_id in states}
