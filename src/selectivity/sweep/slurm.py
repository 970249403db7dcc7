"""SLURM through submitit: one job per run, submitted together as a job array.

Resources per run come from the sweep config's ``slurm:`` section or ``--set slurm.KEY=VALUE``
(:class:`SlurmResources`). Job states are read from ``squeue`` (one call for all jobs, at
most every ``queue_seconds``), which answers on every cluster, with or without accounting
(``sacct`` needs slurmdbd); a job that ``squeue`` no longer lists has ended, and its result
file says how.
"""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, _from_dict
from .executors import Executor, PickledJob, last_line
from .grid import SweepError

__all__ = ["SlurmResources", "SlurmExecutor", "SlurmJob", "check_slurm", "queue_states", "ALIVE_STATES"]

#: squeue states of a job that has not ended (it may still start, run or be requeued).
ALIVE_STATES = frozenset({
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
    "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "STOPPED", "PREEMPTED",
})
_MEM = re.compile(r"^\d+\s*[KMGT]?B?$", re.IGNORECASE)


@dataclass
class SlurmResources:
    """What each run asks SLURM for (one run = one job; one task, or several for data parallelism)."""

    time: int = 24 * 60  # minutes; a run that runs out of time resumes on retry
    cpus_per_task: int | None = None
    gpus: int | None = None  # GPUs per node (gpus_per_node)
    # Data parallelism: nodes x tasks_per_node processes train one run together (DDP, as under
    # torchrun). tasks_per_node None: one task per GPU when gpus is set, else one.
    nodes: int = 1
    tasks_per_node: int | None = None
    mem: str | None = None  # "16G", "500M"; a number means GB
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int | None = None  # at most this many runs at once (--jobs sets it)
    setup: list[str] = field(default_factory=list)  # shell lines before the run, e.g. "module load cuda"
    additional: dict[str, Any] = field(default_factory=dict)  # any other sbatch option: {"mail-type": "END"}

    @classmethod
    def from_dict(cls, data: dict) -> SlurmResources:
        """Checked resources from a ``slurm:`` section; unknown keys and wrong types are errors."""
        data = dict(data or {})
        if isinstance(data.get("mem"), (int, float)) and not isinstance(data["mem"], bool):
            gb = float(data["mem"])
            data["mem"] = f"{int(gb)}G" if gb == int(gb) else f"{int(gb * 1024)}M"
        resources = _from_dict(cls, data, "slurm")
        checks = [
            (resources.time >= 1, "slurm.time must be >= 1 (minutes)"),
            (resources.cpus_per_task is None or resources.cpus_per_task >= 1, "slurm.cpus_per_task must be >= 1"),
            (resources.gpus is None or resources.gpus >= 0, "slurm.gpus must be >= 0"),
            (resources.nodes >= 1, "slurm.nodes must be >= 1"),
            (resources.tasks_per_node is None or resources.tasks_per_node >= 1, "slurm.tasks_per_node must be >= 1"),
            (resources.mem is None or bool(_MEM.match(resources.mem)), "slurm.mem must look like 16G or 500M"),
            (resources.array_parallelism is None or resources.array_parallelism >= 1,
             "slurm.array_parallelism must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return resources

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def tasks(self) -> int:
        """Processes per node: ``tasks_per_node``, else one per GPU, else one."""
        return self.tasks_per_node or self.gpus or 1

    def submitit_parameters(self) -> dict:
        """Keyword arguments for ``submitit.SlurmExecutor.update_parameters``."""
        params: dict[str, Any] = {"time": self.time, "job_name": "selectivity-sweep", "nodes": self.nodes,
                                  "ntasks_per_node": self.tasks, "use_srun": True}
        for key in ("cpus_per_task", "partition", "account", "qos", "constraint", "array_parallelism"):
            if getattr(self, key) is not None:
                params[key] = getattr(self, key)
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        additional = dict(self.additional)
        if self.mem is not None:
            additional["mem"] = self.mem.upper().replace(" ", "").rstrip("B")
        if additional:
            params["additional_parameters"] = additional
        setup = list(self.setup)
        if self.cpus_per_task:  # torch's default is every core of the node, not the job's share
            setup.append("export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}")
        if setup:
            params["setup"] = setup
        return params


# -- talking to SLURM --------------------------------------------------------------------------


def _run(command: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def check_slurm() -> None:
    """Raise :class:`SweepError` unless ``sbatch``, ``srun`` and ``squeue`` are here and answer."""
    for tool in ("sbatch", "srun", "squeue"):
        if shutil.which(tool) is None:
            raise SweepError(f"--executor slurm: no {tool!r} on PATH; "
                             "run on a SLURM login node or use --executor local")
    try:
        answer = _run(["sbatch", "--version"])
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SweepError(f"--executor slurm: sbatch does not answer ({err})") from None
    if answer.returncode != 0:
        raise SweepError(f"--executor slurm: 'sbatch --version' failed: {last_line(answer.stderr or answer.stdout)}")


def queue_states() -> dict[str, str]:
    """State of every job of this user that ``squeue`` lists, array tasks one by one."""
    try:
        answer = _run(["squeue", "--noheader", "--array", "--states=all", f"--user={getpass.getuser()}",
                       "--format=%i|%T"])
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SweepError(f"cannot ask SLURM for job states: squeue: {err}") from None
    if answer.returncode != 0:
        raise SweepError(f"cannot ask SLURM for job states: squeue: {last_line(answer.stderr or answer.stdout)}")
    states = {}
    for line in answer.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id:
            states[job_id] = state.split()[0] if state else "UNKNOWN"
    return states


class SlurmJob(PickledJob):
    """A SLURM job of one run: done once it has a result file or has left the queue."""

    grace_seconds = 15.0  # the result file may show late on a shared file system

    def __init__(self, job: Any, executor: SlurmExecutor) -> None:
        super().__init__(job)
        self._executor = executor

    @property
    def state(self) -> str:
        return self._executor.state(self.job_id)

    def done(self) -> bool:
        return self.paths.result_pickle.exists() or self.state not in ALIVE_STATES


class SlurmExecutor(Executor):
    """Submits runs with ``sbatch`` through ``submitit.SlurmExecutor``; logs go to ``folder``.

    The job's python is this one (``sys.executable``) and sbatch passes on this environment,
    so the jobs see the same installed package and the same data cache settings.
    """

    name = "slurm"
    max_in_flight = None  # SLURM queues them all; the array's parallelism limits what runs
    poll_seconds = 1.0

    def __init__(self, folder: str | Path, resources: SlurmResources | None = None, jobs: int | None = None,
                 queue_seconds: float = 10.0) -> None:
        self.folder = Path(folder).absolute()
        self.resources = resources or SlurmResources()
        if jobs is not None:
            self.resources.array_parallelism = jobs
        self.queue_seconds = queue_seconds
        self._states: dict[str, str] = {}
        self._queried = float("-inf")

    def _submitit(self):
        import submitit

        executor = submitit.SlurmExecutor(folder=str(self.folder), python=sys.executable)
        executor.update_parameters(**self.resources.submitit_parameters())
        return executor

    def submit(self, fn: Callable, *args: Any) -> SlurmJob:
        return self.submit_all(fn, [args])[0]

    def submit_all(self, fn: Callable, args: Sequence[tuple]) -> list[SlurmJob]:
        """All calls in one ``sbatch`` (a job array when there are several)."""
        if not args:
            return []
        try:
            jobs = self._submitit().map_array(fn, *zip(*args, strict=True))
        except Exception as err:  # sbatch refused: bad partition, time limit, no controller...
            text = getattr(err, "stderr", None) or str(err)
            raise SweepError(f"sbatch failed: {last_line(text)}") from None
        for job in jobs:
            self._states[str(job.job_id)] = "PENDING"
        return [SlurmJob(job, self) for job in jobs]

    def state(self, job_id: str) -> str:
        """A job's squeue state, refreshed at most every ``queue_seconds``; ``ENDED`` once unlisted."""
        if time.monotonic() - self._queried > self.queue_seconds:
            self.refresh()
        return self._states.get(job_id, "ENDED")

    def refresh(self) -> None:
        try:
            listed = queue_states()
        except SweepError as err:  # the controller may be busy for a moment: keep what we knew
            print(f"warning: {err}; retrying", file=sys.stderr)
            self._queried = time.monotonic()
            return
        self._states = {job_id: listed.get(job_id, "ENDED") for job_id in set(self._states) | set(listed)}
        self._queried = time.monotonic()

    def alive(self, job_ids: Sequence[str]) -> dict[str, str]:
        listed = queue_states()  # here a failure is an error: better stop than start a run twice
        self._states.update(listed)
        self._queried = time.monotonic()
        return {job_id: listed[job_id] for job_id in job_ids if listed.get(job_id) in ALIVE_STATES}

    def attach(self, job_id: str) -> SlurmJob:
        """The job of an earlier sweep command, to wait for it instead of submitting again."""
        import submitit

        return SlurmJob(submitit.SlurmJob(folder=str(self.folder), job_id=job_id), self)

