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


@pytest.mark.slow
def test_a_two_task_slurm_job_trains_one_run_with_ddp_and_is_not_submitted_again(slurm_cluster, tmp_path, tiny):
    out = tmp_path / "sweep"
    overrides = [*tiny, "slurm.time=10", "slurm.cpus_per_task=1", "slurm.nodes=1", "slurm.tasks_per_node=2",
                 f"slurm.partition={slurm_cluster.partition}"]

    def sweep():
        return run_sweep("demo", "-1", "0", out, executor="slurm", overrides=overrides, progress=False)

    before = set(slurm_cluster.job_ids())
    first = sweep()
    assert first.submitted == 1 and first.ok, first
    script = next((out / "logs" / "slurm").glob("*_submission.sh")).read_text()
    assert "#SBATCH --ntasks-per-node=2" in script
    (run_dir,) = out.glob("alpha*")
    final = json.loads((run_dir / "final.json").read_text())
    assert final["status"] == "completed" and final["processes"] == 2  # one run, two DDP ranks
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in metrics] == [0]  # logged once, by rank 0
    attempts = (run_dir / "attempts.jsonl").read_text().splitlines()
    assert len(attempts) == 1 and json.loads(attempts[0])["outcome"] == "completed"
    jobs = set(slurm_cluster.job_ids()) - before

    again = sweep()
    assert again.submitted == 0 and again.ok
    assert set(slurm_cluster.job_ids()) - before == jobs
