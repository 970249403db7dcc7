"""A real one-node SLURM cluster for the tests: munged, slurmctld and slurmd on this machine.

``SlurmCluster(tmp).start()`` installs Debian's ``slurm-wlm`` and ``munge`` when missing
(apt-get, as root), writes a minimal ``slurm.conf`` under ``tmp`` (this host, its CPUs and
memory, one partition, no cgroups, no accounting), creates the munge key if missing,
starts the daemons it needs and waits until the node is idle and ``srun hostname``
answers. ``stop()`` stops only the daemons it started. Anything that cannot be had raises
:class:`SlurmUnavailable` with the reason, for the fixture to skip on.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
PACKAGES = ["slurm-wlm", "munge"]
TOOLS = ["slurmctld", "slurmd", "munged", "munge", "sbatch", "srun", "squeue", "sinfo"]


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started here; the message says why."""


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=SBIN_PATH)


def _run(command: list[str], timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_installed() -> None:
    """apt-get install slurm-wlm and munge unless their tools are all here."""
    missing = [tool for tool in TOOLS if _which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"SLURM tools missing ({', '.join(missing)}) and installing them needs root")
    apt = _which("apt-get")
    if apt is None:
        raise SlurmUnavailable(f"SLURM tools missing ({', '.join(missing)}) and there is no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    answer = _run(install, timeout=600, env=env)
    if answer.returncode != 0:  # a fresh machine may have no package lists yet
        _run([apt, "update", "-q"], timeout=600, env=env)
        answer = _run(install, timeout=600, env=env)
    missing = [tool for tool in TOOLS if _which(tool) is None]
    if answer.returncode != 0 or missing:
        raise SlurmUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: {_last(answer.stderr or answer.stdout)}")


def _node_hardware() -> str:
    """``CPUs=.. Boards=.. ... RealMemory=..`` as slurmd sees this machine (memory with a margin)."""
    answer = _run([_which("slurmd"), "-C"], timeout=30)
    fields = {}
    if answer.returncode == 0 and answer.stdout.startswith("NodeName="):
        for item in answer.stdout.splitlines()[0].split()[1:]:
            key, _, value = item.partition("=")
            fields[key] = value
    if "CPUs" not in fields:
        fields = {"CPUs": str(os.cpu_count() or 1)}
    if "RealMemory" in fields:
        fields["RealMemory"] = str(int(int(fields["RealMemory"]) * 0.9))
    return " ".join(f"{k}={v}" for k, v in fields.items())


class SlurmCluster:
    """One node, one partition ``debug``, state under ``root``; ``env`` is what clients need."""

    partition = "debug"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._daemons: list[tuple[str, subprocess.Popen]] = []

    # -- start ---------------------------------------------------------------------------------

    def start(self) -> SlurmCluster:
        ensure_installed()
        self._start_munge()
        self._write_conf()
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait_idle(timeout=60)
        answer = _run(["srun", "--time=1", "hostname"], timeout=60, env=self.env)
        if answer.returncode != 0:
            raise SlurmUnavailable(f"srun hostname failed: {_last(answer.stderr)}{self._logs()}")
        return self

    def _munge_works(self) -> bool:
        try:
            return _run([_which("munge"), "-n"], timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _start_munge(self) -> None:
        if self._munge_works():
            return  # a munged is already running: use it, and leave it running
        try:
            user = pwd.getpwnam("munge")
        except KeyError:
            raise SlurmUnavailable("no 'munge' user (the munge package creates it)") from None
        if os.geteuid() != 0:
            raise SlurmUnavailable("munged is not running and starting it needs root")
        key = Path("/etc/munge/munge.key")
        for folder in (key.parent, Path("/run/munge"), Path("/var/log/munge"), Path("/var/lib/munge")):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, user.pw_uid, user.pw_gid)
        os.chmod(key.parent, 0o700)
        os.chmod("/run/munge", 0o755)
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chown(key, user.pw_uid, user.pw_gid)
        os.chmod(key, 0o400)

        def as_munge() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

        self._spawn("munged", [_which("munged"), "--foreground"], preexec_fn=as_munge)
        deadline = time.monotonic() + 20
        while not self._munge_works():
            if time.monotonic() > deadline:
                raise SlurmUnavailable(f"munged did not start{self._logs()}")
            time.sleep(0.2)

    def _write_conf(self) -> None:
        for folder in ("state", "spool"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        r = self.root
        self.conf.write_text("\n".join([
            "ClusterName=selectivity-test",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill",
            "ReturnToService=2",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "MailProg=/bin/true",
            "MinJobAge=3600",  # finished jobs stay listed by squeue for the whole session
            "KillWait=5",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'slurmd.log'}",
            f"NodeName={self.node} NodeAddr=127.0.0.1 {_node_hardware()} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))

    def _spawn(self, name: str, command: list[str], **kwargs) -> None:
        log = open(self.root / f"{name}.out", "w")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                   start_new_session=True, **kwargs)
        log.close()
        self._daemons.append((name, process))

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = "no answer"
        while time.monotonic() < deadline:
            for name, process in self._daemons:
                if process.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited with code {process.returncode}{self._logs()}")
            answer = _run(["sinfo", "--noheader", "--Node", f"--nodes={self.node}", "--format=%t"], timeout=20,
                          env=self.env)
            state = answer.stdout.strip() or _last(answer.stderr)
            if answer.returncode == 0 and state.rstrip("*") == "idle":
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"node {self.node} not idle after {timeout:.0f} s (state: {state}){self._logs()}")

    def _logs(self) -> str:
        tails = []
        for name in ("munged.out", "slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"):
            path = self.root / name
            if path.exists() and path.stat().st_size:
                tails.append(f"{name}: {_last(path.read_text(errors='replace'))}")
        return f"; {'; '.join(tails)}" if tails else ""

    # -- use -------------------------------------------------------------------------------------

    def job_ids(self) -> list[str]:
        """Every job this cluster has seen (finished ones stay listed: MinJobAge is an hour)."""
        answer = _run(["squeue", "--noheader", "--array", "--states=all", "--format=%i"], timeout=30, env=self.env)
        if answer.returncode != 0:
            raise RuntimeError(f"squeue failed: {_last(answer.stderr)}")
        return sorted(answer.stdout.split())

    def release(self, job_ids: list[str]) -> None:
        """Let held jobs start."""
        answer = _run(["scontrol", "release", ",".join(job_ids)], timeout=30, env=self.env)
        if answer.returncode != 0:
            raise RuntimeError(f"scontrol release failed: {_last(answer.stderr)}")

    # -- stop ------------------------------------------------------------------------------------

    def _active_jobs(self) -> list[str]:
        answer = _run(["squeue", "--noheader", "--format=%i"], timeout=30, env=self.env)
        return answer.stdout.split() if answer.returncode == 0 else []

    def drain(self, timeout: float = 60) -> None:
        """Let the jobs end (a job's result file appears before SLURM marks it done), then cancel the rest.

        Stopping slurmd under a running job would leave its slurmstepd waiting forever.
        """
        deadline = time.monotonic() + timeout
        while self._active_jobs() and time.monotonic() < deadline:
            time.sleep(0.5)
        if self._active_jobs():
            _run(["scancel", "--full", *self._active_jobs()], timeout=30, env=self.env)
            deadline = time.monotonic() + 20
            while self._active_jobs() and time.monotonic() < deadline:
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop the daemons this object started (slurmd first, munged last), nothing else."""
        if any(name == "slurmctld" and process.poll() is None for name, process in self._daemons):
            self.drain()
        for _, process in reversed(self._daemons):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        self._daemons.clear()
