"""A sweep through a real SLURM (see conftest.slurm_cluster): sbatch, job arrays, no resubmission."""

import json
import sys
import threading
import time

import pandas as pd
import pytest

from selectivity.sweep import run_sweep


def _manifest_jobs(out):
    manifest = json.loads((out / "sweep.json").read_text())
    return {run["dir"]: [j["job_id"] for j in run["jobs"] if j["executor"] == "slurm"]
            for run in manifest["runs"].values()}


@pytest.mark.slow
def test_a_sweep_through_slurm_submits_each_run_once(slurm_cluster, tmp_path, tiny, capsys):
    out = tmp_path / "sweep"
    overrides = [*tiny, "slurm.time=10", "slurm.cpus_per_task=1", f"slurm.partition={slurm_cluster.partition}"]

    def sweep(**kwargs):
        return run_sweep("demo", "-1,0", "0", out, executor="slurm", overrides=overrides, progress=False, **kwargs)

    before = set(slurm_cluster.job_ids())
    # Submit without waiting: one sbatch, a job array of two runs, held so that they cannot start yet.
    first = sweep(wait=False, slurm={"additional": {"hold": True}})
    assert first.submitted == 2 and len(first.unfinished) == 2
    jobs = _manifest_jobs(out)
    ids = sorted(i for run_ids in jobs.values() for i in run_ids)
    assert all(len(run_ids) == 1 for run_ids in jobs.values()) and len(ids) == 2
    assert len({i.split("_")[0] for i in ids}) == 1  # one array
    assert set(slurm_cluster.job_ids()) - before == set(ids)
    script = next((out / "logs" / "slurm").glob("*_submission.sh")).read_text()
    assert sys.executable in script and "#SBATCH --cpus-per-task=1" in script and "#SBATCH --hold" in script

    # The same command while the jobs are queued: it waits for them and submits nothing.
    second = {}
    waiter = threading.Thread(target=lambda: second.update(outcome=sweep()))
    waiter.start()
    time.sleep(1)  # not a timing assertion: the jobs cannot end before they are released
    slurm_cluster.release(ids)
    waiter.join(timeout=300)
    assert second["outcome"].submitted == 0 and second["outcome"].ok
    assert "waiting for SLURM job" in capsys.readouterr().err
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2 and (table.status == "completed").all() and table.alpha.tolist() == [-1.0, 0.0]
    assert table.wall_seconds.gt(0).all()
    for run_dir in out.glob("alpha*"):
        attempts = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
        assert len(attempts) == 1 and attempts[0]["job_id"] in ids and attempts[0]["outcome"] == "completed"
    finals = {p: p.stat().st_mtime_ns for p in out.glob("*/final.json")}

    # And once more after the end: no new SLURM job, no training, the same table.
    third = sweep()
    assert third.submitted == 0 and third.ok
    assert set(slurm_cluster.job_ids()) - before == set(ids)
    assert _manifest_jobs(out) == jobs
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/final.json")} == finals
    assert pd.read_csv(out / "results.csv").equals(table)
