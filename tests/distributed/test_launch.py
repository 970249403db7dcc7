"""Launch plumbing: SLURM resources of a multi-task run, torchrun's environment from submitit's."""

import pytest

from selectivity.sweep.slurm import SlurmResources
from selectivity.config import ConfigError, load_config
from selectivity.train.distributed import env_from_submitit


def test_nodes_and_tasks_per_node_become_the_jobs_shape():
    params = SlurmResources.from_dict({"nodes": 2, "tasks_per_node": 3}).submitit_parameters()
    assert params["nodes"] == 2 and params["ntasks_per_node"] == 3
    params = SlurmResources.from_dict({"gpus": 4}).submitit_parameters()  # one task per GPU
    assert params["nodes"] == 1 and params["ntasks_per_node"] == 4 and params["gpus_per_node"] == 4
    assert SlurmResources.from_dict({}).submitit_parameters()["ntasks_per_node"] == 1
    with pytest.raises(ConfigError, match="slurm.nodes"):
        SlurmResources.from_dict({"nodes": 0})


def test_a_task_of_a_multi_task_job_gets_torchruns_variables(monkeypatch):
    for key, value in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4321", "SLURM_NTASKS": "4", "SLURM_PROCID": "3",
                       "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "node[07-08]", "SLURM_JOB_NUM_NODES": "2",
                       "SLURM_NODEID": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    env = env_from_submitit()
    assert env == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "node07",
                   "MASTER_PORT": str(20000 + 4321)}
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert env_from_submitit() == {}  # one task: a one-process run


def test_outside_any_job_there_is_nothing_to_join(monkeypatch):
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert env_from_submitit() == {}


def test_sync_options_are_checked():
    assert load_config("demo", []).regularizer.sync == "global" and load_config("demo", []).train.sync_bn is True
    assert load_config("demo", ["regularizer.sync=local", "train.sync_bn=false"]).regularizer.sync == "local"
    with pytest.raises(ConfigError, match="regularizer.sync"):
        load_config("demo", ["regularizer.sync=everywhere"])


def test_the_new_keys_at_their_defaults_keep_the_run_ids_of_older_sweeps():
    from selectivity.sweep.grid import run_id
    from selectivity.config import config_to_dict

    data = config_to_dict(load_config("demo", []))
    older = {**data, "regularizer": {k: v for k, v in data["regularizer"].items() if k != "sync"},
             "train": {k: v for k, v in data["train"].items() if k != "sync_bn"}}
    assert run_id(data) == run_id(older)
    assert run_id(config_to_dict(load_config("demo", ["regularizer.sync=local"]))) != run_id(data)


def test_python_dash_m_selectivity_is_the_command():
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[2] / "src")
    answer = subprocess.run([sys.executable, "-m", "selectivity", "train", "--help"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": src}, timeout=120)
    assert answer.returncode == 0 and "usage: selectivity train" in answer.stdout
