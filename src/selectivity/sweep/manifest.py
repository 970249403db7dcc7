"""The sweep directory is the sweep's record; ``sweep.json`` is its manifest.

    DIR/
      sweep.json            base config, grid, executor, one entry per run with its jobs
      <run name>/           one run directory per run (see selectivity.runs), plus
        attempts.jsonl      one line per attempt: host, job id, wall seconds, outcome
        failed.json         written when a run has used up its retries: the error
      logs/<executor>/      submitit's job files and logs
      results.csv           one row per finished or failed run
      results.parquet       the same table

Only the ``selectivity sweep`` command writes ``sweep.json`` (atomically, under a lock);
the jobs write only into their run directories.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ..runs import RunError, read_json, read_text, run_name, write_text
from ..config import ConfigError, config_from_dict
from .grid import GridRun, SweepError, base_config_dict, run_id
from ..safe_yaml import load_yaml

__all__ = ["SweepPaths", "Manifest", "MANIFEST_FORMAT", "now"]

MANIFEST_FORMAT = "selectivity-sweep-1"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class SweepPaths:
    """Every file name of a sweep directory."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "sweep.json"

    @property
    def lock(self) -> Path:
        return self.root / ".sweep.lock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def results_parquet(self) -> Path:
        return self.root / "results.parquet"

    def run_dir(self, run: GridRun) -> Path:
        """Run directories sit in the sweep directory itself, as the report expects them.

        A schedule's run written before names held the schedule keeps its directory (same id).
        """
        path = self.root / run.name
        if run.schedule is not None and not path.exists():
            before = self.root / f"{run_name(run.alpha, run.seed)}-{run.id}"
            if (before / "config.yaml").is_file():
                return before
        return path


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs.extend(_diff(va, vb, f"{prefix}{key}."))
        elif va != vb:
            diffs.append(f"{prefix}{key}: {va!r} there, {vb!r} now")
    return diffs


def _knob_entry(kind: str, lam: float) -> dict:
    """A MonoLoss run's entry also holds its kind and lambda (SI runs' entries stay as they were)."""
    return {"kind": kind, "lambda": lam} if kind == "monoloss" else {}


@dataclass
class Manifest:
    """What ``sweep.json`` holds. ``runs`` maps a run id to its alpha, seed, directory
    (relative to the sweep directory), status and jobs (executor, job id, time)."""

    base_config: dict
    runs: dict[str, dict] = field(default_factory=dict)
    executor: dict = field(default_factory=dict)
    created: str = field(default_factory=now)
    updated: str = field(default_factory=now)

    @classmethod
    def open(cls, paths: SweepPaths, base_config: dict) -> Manifest:
        """The directory's manifest, or a new one; refuses a sweep of another base config."""
        if not paths.manifest.exists():
            return cls(base_config=base_config)
        try:
            data = read_json(paths.manifest)
            if data.get("format") != MANIFEST_FORMAT:
                raise KeyError("format")
            manifest = cls(base_config=data["base_config"], runs=data["runs"], executor=data.get("executor", {}),
                           created=data.get("created", now()))
        except Exception as err:
            return cls.rebuild(paths, base_config, f"{type(err).__name__}: {err}")
        if manifest.base_config != base_config:
            diff = "; ".join(_diff(manifest.base_config, base_config))
            raise SweepError(f"{paths.root} holds a sweep of a different config ({diff}); "
                             "use another --out or the same settings")
        return manifest

    @classmethod
    def rebuild(cls, paths: SweepPaths, base_config: dict, why: str) -> Manifest:
        """A manifest rebuilt from the run directories, for a ``sweep.json`` that cannot be read.

        The run directories are the record: each one's config.yaml gives its alpha, seed and id,
        and must share ``base_config`` (else this is another sweep's directory). The unreadable
        file is kept beside as ``sweep.json.corrupt``.
        """
        runs = {}
        for run_dir in sorted(p for p in paths.root.iterdir() if (p / "config.yaml").is_file()):
            try:
                config = config_from_dict(load_yaml(read_text(run_dir / "config.yaml"), f"{run_dir / 'config.yaml'}"))
            except (RunError, ConfigError, yaml.YAMLError) as err:
                raise SweepError(f"{paths.manifest} is unreadable ({why}) and so is {run_dir / 'config.yaml'} "
                                 f"({str(err).splitlines()[0]}); use another --out") from None
            if json.loads(json.dumps(base_config_dict(config))) != base_config:
                raise SweepError(f"{paths.root} holds a sweep of a different config ({run_dir.name}); "
                                 "use another --out or the same settings")
            runs[run_id(config)] = {"alpha": config.regularizer.alpha, "seed": config.train.seed,
                                    **_knob_entry(config.regularizer.kind, config.regularizer.lambda_),
                                    "dir": run_dir.name, "status": "new", "jobs": []}
        os.replace(paths.manifest, paths.manifest.with_name("sweep.json.corrupt"))
        warnings.warn(f"{paths.manifest} was unreadable ({why}); rebuilt it from {len(runs)} run directories "
                      "(the old file is kept as sweep.json.corrupt)", stacklevel=2)
        return cls(base_config=base_config, runs=runs)

    def add(self, runs: list[GridRun], paths: SweepPaths) -> None:
        for run in runs:
            self.runs.setdefault(run.id, {"alpha": run.alpha, "seed": run.seed, **_knob_entry(run.kind, run.lam),
                                          "dir": str(paths.run_dir(run).relative_to(paths.root)),
                                          "status": "new", "jobs": []})

    def set_status(self, run_id: str, status: str) -> None:
        self.runs[run_id]["status"] = status

    def add_job(self, run_id: str, executor: str, job_id: str) -> None:
        self.runs[run_id]["jobs"].append({"executor": executor, "job_id": job_id, "submitted": now()})
        self.runs[run_id]["status"] = "submitted"

    def last_job(self, run_id: str) -> dict | None:
        jobs = self.runs.get(run_id, {}).get("jobs") or []
        return jobs[-1] if jobs else None

    def run_dirs(self, paths: SweepPaths) -> list[Path]:
        return [paths.root / entry["dir"] for entry in self.runs.values()]

    def grid(self) -> dict:
        si = [e for e in self.runs.values() if e.get("kind", "si") == "si"]
        alphas = sorted({entry["alpha"] for entry in si})
        seeds = sorted({entry["seed"] for entry in self.runs.values()})
        lambdas = sorted({e["lambda"] for e in self.runs.values() if e.get("kind") == "monoloss"})
        return {"alphas": alphas, "seeds": seeds, **({"lambdas": lambdas} if lambdas else {})}

    def save(self, paths: SweepPaths) -> None:
        self.updated = now()
        data = {"format": MANIFEST_FORMAT, "created": self.created, "updated": self.updated,
                "base_config": self.base_config, "grid": self.grid(), "executor": self.executor, "runs": self.runs}
        write_text(paths.manifest, json.dumps(data, indent=2) + "\n")
