"""Executors by name: what ``selectivity sweep --executor NAME`` builds."""

from __future__ import annotations

from pathlib import Path

from .executors import DebugExecutor, Executor, LocalExecutor
from .grid import SweepError
from .slurm import SlurmExecutor, SlurmResources, check_slurm

__all__ = ["EXECUTORS", "make_executor"]

#: Executor names, as the CLI's ``--executor`` takes them.
EXECUTORS = ("debug", "local", "slurm")


def make_executor(name: str, folder: str | Path, jobs: int | None = None, slurm=None) -> Executor:
    """An executor by name: ``debug``, ``local`` or ``slurm``; ``folder`` holds its logs.

    ``jobs``: runs at once (local: processes, default 1; slurm: the job array's
    parallelism, default no limit). ``slurm``: a :class:`~.slurm.SlurmResources` or a dict.
    """
    if name not in EXECUTORS:
        raise SweepError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise SweepError(f"--jobs must be >= 1, got {jobs}")
    if name == "debug":
        if jobs not in (None, 1):
            raise SweepError("the debug executor runs one run at a time; use --executor local for --jobs > 1")
        return DebugExecutor()
    if name == "local":
        return LocalExecutor(Path(folder) / "local", jobs or 1)
    resources = slurm if isinstance(slurm, SlurmResources) else SlurmResources.from_dict(slurm or {})
    check_slurm()
    return SlurmExecutor(Path(folder) / "slurm", resources, jobs)
