"""Executors with one interface, the submitit shape: ``executor.submit(fn, *args) -> Job``.

A :class:`Job` has ``job_id``, ``done()``, ``result()`` (the function's return value, or
the job's error raised) and ``state``. The backends (chosen by :func:`.backends.make_executor`):

- ``debug``: runs the function in this process at ``submit``; errors keep their traceback.
- ``local``: one subprocess per run (submitit's ``LocalExecutor``), at most ``jobs`` at once.
- ``slurm``: one SLURM job per run, submitted as job arrays (see :mod:`.slurm`).

The function must be a plain picklable callable, e.g. :func:`selectivity.sweep.runner.run_one`.
"""

from __future__ import annotations

import itertools
import os
import shlex
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from .grid import SweepError

__all__ = ["Job", "JobFailed", "Executor", "DebugExecutor", "LocalExecutor", "PARENT_PID_ENV"]

#: Set for local workers: the process id of the sweep command they belong to.
PARENT_PID_ENV = "SELECTIVITY_SWEEP_PID"


class Job(Protocol):
    """A submitted call: what every backend returns."""

    job_id: str

    def done(self) -> bool: ...

    def result(self) -> Any: ...

    @property
    def state(self) -> str: ...


class JobFailed(RuntimeError):
    """A job that raised or died. ``summary``: one line; ``trace``: the traceback or the log's tail."""

    def __init__(self, summary: str, trace: str = "") -> None:
        super().__init__(summary)
        self.summary, self.trace = summary, trace


def last_line(text: str) -> str:
    """The last non-empty line of a traceback: ``"ValueError: bad input"``."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class PickledJob:
    """A submitit job read through its files: ``result()`` never waits on the scheduler.

    submitit writes ``("success", value)`` or ``("error", traceback)`` to the job's result
    pickle; a job that ends without one (killed, out of time or memory) raises
    :class:`JobFailed` with its log's tail. ``grace_seconds`` covers slow shared file systems.
    """

    grace_seconds = 0.0

    def __init__(self, job: Any) -> None:
        self._job = job
        self.job_id = str(job.job_id)

    @property
    def paths(self):
        return self._job.paths

    def done(self) -> bool:
        raise NotImplementedError

    @property
    def state(self) -> str:
        raise NotImplementedError

    def result(self) -> Any:
        from submitit.core.utils import pickle_load

        while not self.done():
            time.sleep(1)
        deadline = time.monotonic() + self.grace_seconds
        while not self.paths.result_pickle.exists() and time.monotonic() < deadline:
            time.sleep(1)
        if not self.paths.result_pickle.exists():
            log = _tail(self.paths.stderr) or _tail(self.paths.stdout)
            summary = f"job {self.job_id} ended ({self.state}) without a result"
            if log:
                summary += f": {last_line(log)}"
            raise JobFailed(summary, f"{log}\n(logs: {self.paths.stderr}, {self.paths.stdout})")
        outcome, value = pickle_load(self.paths.result_pickle)
        if outcome != "success":
            raise JobFailed(last_line(value), str(value))
        return value


class Executor:
    """Base: ``submit`` one call, ``submit_all`` many (a job array where the backend has them).

    ``max_in_flight`` is how many jobs the sweep keeps submitted at once (None: all).
    ``poll_seconds`` is how often the sweep asks unfinished jobs whether they are done.
    """

    name = "base"
    max_in_flight: int | None = 1
    poll_seconds: float = 0.5

    def submit(self, fn: Callable, *args: Any) -> Job:
        raise NotImplementedError

    def submit_all(self, fn: Callable, args: Sequence[tuple]) -> list[Job]:
        return [self.submit(fn, *a) for a in args]

    def alive(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Jobs of an earlier sweep command still queued or running, with their state.

        Backends whose jobs die with the command that started them have none.
        """
        return {}

    def attach(self, job_id: str) -> Job:
        raise SweepError(f"the {self.name} executor cannot attach to job {job_id}")


# -- in-process -------------------------------------------------------------------------------


class DebugJob:
    """A call that already ran in this process."""

    def __init__(self, job_id: str, value: Any = None, error: JobFailed | None = None):
        self.job_id, self._value, self._error = job_id, value, error

    def done(self) -> bool:
        return True

    @property
    def state(self) -> str:
        return "FAILED" if self._error is not None else "COMPLETED"

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class DebugExecutor(Executor):
    """Runs each call in this process, one after the other (for debugging and tests)."""

    name = "debug"
    max_in_flight = 1
    poll_seconds = 0.0

    def __init__(self) -> None:
        self._ids = itertools.count()

    def submit(self, fn: Callable, *args: Any) -> DebugJob:
        job_id = f"debug-{next(self._ids)}"
        try:
            return DebugJob(job_id, value=fn(*args))
        except Exception:  # KeyboardInterrupt stops the sweep, as it should
            trace = traceback.format_exc()
            return DebugJob(job_id, error=JobFailed(last_line(trace), trace))


# -- local subprocesses -----------------------------------------------------------------------


class LocalExecutor(Executor):
    """One subprocess per call through ``submitit.LocalExecutor``; at most ``jobs`` at once.

    Logs and pickles go to ``folder``. With ``jobs > 1`` and no ``OMP_NUM_THREADS`` set,
    each process gets ``cpu_count // jobs`` torch threads (``train.threads`` still wins).
    """

    name = "local"
    poll_seconds = 0.5

    def __init__(self, folder: str | Path, jobs: int = 1) -> None:
        if jobs < 1:
            raise SweepError(f"--jobs must be >= 1, got {jobs}")
        self.folder, self.max_in_flight = Path(folder), jobs
        self._executor = None  # made at the first submit: nothing is written before

    def submit(self, fn: Callable, *args: Any) -> Job:
        if self._executor is None:
            import submitit

            self._executor = submitit.LocalExecutor(folder=str(self.folder))
            # Workers watch this process and end with it (see runner.run_one); submitit's controller
            # writes to a log, not to the terminal, so Ctrl-C prints no traceback of its own.
            self.folder.mkdir(parents=True, exist_ok=True)
            setup = [f"export {PARENT_PID_ENV}={os.getpid()}",
                     f"exec >>{shlex.quote(str(self.folder / 'controller.log'))} 2>&1 </dev/null"]
            if self.max_in_flight > 1 and "OMP_NUM_THREADS" not in os.environ:
                setup.append(f"export OMP_NUM_THREADS={max(1, (os.cpu_count() or 1) // self.max_in_flight)}")
            # A run may take days; submitit's local default is 2 minutes.
            self._executor.update_parameters(timeout_min=60 * 24 * 365, setup=setup)
        return LocalJob(self._executor.submit(fn, *args))


class LocalJob(PickledJob):
    """A submitit local job: done when its process has exited."""

    def done(self) -> bool:
        return self._job.done()

    @property
    def state(self) -> str:
        return "RUNNING" if not self._job.done() else "ENDED"
