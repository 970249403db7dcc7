import pytest

from selectivity.sweep import SlurmResources, SweepError, make_grid, parse_alphas, parse_seeds, run_id
from selectivity.sweep.grid import load_sweep_config
from selectivity.config import ConfigError, config_to_dict, load_config


def test_run_ids_are_stable_and_distinct():
    config = load_config("demo", ["train.epochs=2"])
    grid = make_grid(config, "-1,0,1", "0,1")
    assert [(r.alpha, r.seed) for r in grid] == [(-1, 0), (-1, 1), (0, 0), (0, 1), (1, 0), (1, 1)]
    assert len({r.id for r in grid}) == 6 and len({r.name for r in grid}) == 6
    # The same config built another way (other key order, alpha as an int) gives the same ids.
    again = make_grid(load_config(config_to_dict(config)), [1, 0, -1], ["1", "0"])
    assert {r.id for r in again} == {r.id for r in grid}
    assert grid[0].name == f"alpha-1_seed0-{grid[0].id}" and len(grid[0].id) == 10
    reordered = dict(reversed(list(grid[0].config.items())))
    assert run_id(reordered) == grid[0].id
    # Any other setting gives other ids.
    other = make_grid(load_config("demo", ["train.epochs=3"]), "-1", "0")
    assert other[0].id != grid[0].id
    assert grid[0].config["regularizer"]["alpha"] == -1.0 and grid[0].config["train"]["seed"] == 0


@pytest.mark.parametrize("text, message", [
    ("", "empty"), (" ", "empty"), ("1,,2", "empty item"), ("a,b", "not a number"), ("nan", "finite"),
    ("1,1", "twice"),
])
def test_bad_alpha_lists(text, message):
    with pytest.raises(SweepError, match=message) as info:
        parse_alphas(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [("", "empty"), ("1.5", "integer"), ("-1", "integer"), ("0,0", "twice")])
def test_bad_seed_lists(text, message):
    with pytest.raises(SweepError, match=message):
        parse_seeds(text)


def test_lists_from_the_command_line():
    assert parse_alphas(["-1", "0,0.5"]) == [-1.0, 0.0, 0.5]
    assert parse_alphas("-0") == [0.0]
    assert parse_seeds(["0", "1,2"]) == [0, 1, 2]


def test_slurm_section_and_overrides(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("model:\n  name: resnet_demo\nslurm:\n  time: 30\n  partition: gpu\n  mem: 16\n")
    config, slurm = load_sweep_config(path, ["slurm.gpus=1", "train.epochs=2"])
    assert config.name == "sweep" and config.train.epochs == 2
    resources = SlurmResources.from_dict(slurm)
    assert (resources.time, resources.partition, resources.gpus, resources.mem) == (30, "gpu", 1, "16G")
    params = resources.submitit_parameters()
    assert params["time"] == 30 and params["gpus_per_node"] == 1 and params["additional_parameters"] == {"mem": "16G"}
    # submitit accepts them and makes an sbatch script of them
    from submitit.slurm.slurm import _make_sbatch_string

    script = _make_sbatch_string(command="python -c pass", folder=str(tmp_path), **params)
    assert "#SBATCH --partition=gpu" in script and "#SBATCH --mem=16G" in script and "#SBATCH --time=30" in script
    with pytest.raises(ConfigError, match="slurm.tim"):
        SlurmResources.from_dict({"tim": 3})
    with pytest.raises(ConfigError, match="slurm.mem"):
        SlurmResources.from_dict({"mem": "lots"})
    with pytest.raises(ConfigError, match="slurm.time"):
        SlurmResources.from_dict({"time": "1h"})


def test_keys_added_later_at_their_defaults_keep_old_ids():
    """A sweep written before record.* and regularizer.schedule existed keeps its run ids."""
    from selectivity.sweep.grid import base_config_dict, run_id
    from selectivity.config import config_to_dict, load_config

    config = load_config("demo")
    data = config_to_dict(config)
    old = {k: v for k, v in data.items() if k != "record"}
    old["regularizer"] = {k: v for k, v in data["regularizer"].items() if k != "schedule"}
    assert run_id(data) == run_id(old)
    assert "record" not in base_config_dict(config) and "schedule" not in base_config_dict(config)["regularizer"]
    changed = config_to_dict(load_config("demo", ["record.enabled=true"]))
    assert run_id(changed) != run_id(data) and "record" in base_config_dict(load_config("demo", ["record.enabled=true"]))


def test_run_names_carry_the_schedule_and_ids_written_before_stay():
    """Ids and names as version 0.1 wrote them (pinned) where no schedule is set; a schedule's run
    keeps its id and gets the schedule in its name, so two schedules of one alpha read apart."""
    config = load_config("demo", ["train.epochs=2"])
    (plain,) = make_grid(config, "-1", "0")
    assert plain.name == "alpha-1_seed0-ce457b2319"  # the name the sweep of an earlier version wrote
    early, late = make_grid(config, None, "0", ["-2*2", "0*1 -2*1"])
    assert late.id == "e5cc9dae1c" and late.name == "alpha-2_sched0x1_-2x1_seed0-e5cc9dae1c"
    assert early.name == f"alpha-2_sched-2x2_seed0-{early.id}"


def test_a_schedule_run_written_under_its_old_name_is_found_and_resumed(tmp_path):
    from selectivity.sweep.manifest import SweepPaths

    config = load_config("demo", ["train.epochs=2"])
    (run,) = make_grid(config, None, "0", ["0*1 -2*1"])
    paths = SweepPaths(tmp_path)
    assert paths.run_dir(run) == tmp_path / "alpha-2_sched0x1_-2x1_seed0-e5cc9dae1c"
    before = tmp_path / "alpha-2_seed0-e5cc9dae1c"  # the same run, named before names held schedules
    before.mkdir()
    (before / "config.yaml").write_text("name: demo\n")
    assert paths.run_dir(run) == before


def test_a_grid_of_both_knobs_has_monoloss_runs_beside_the_alpha_runs():
    """--lambdas adds one regularizer.kind=monoloss run per (lambda, seed); lambda 0 is the plain
    run of alpha 0 (one id), and the alpha runs keep the ids they had before MonoLoss existed."""
    config = load_config("demo", ["train.epochs=2"])
    grid = make_grid(config, "-1,0", "0", lambdas="0,0.1,-0.3")
    assert [(r.kind, r.alpha, r.lam) for r in grid] == [("si", -1.0, 0.0), ("si", 0.0, 0.0),
                                                        ("monoloss", 0.0, 0.1), ("monoloss", 0.0, -0.3)]
    assert grid[0].name == "alpha-1_seed0-ce457b2319"  # pinned: unchanged by the second knob
    assert grid[2].name == f"lambda+0.1_seed0-{grid[2].id}" and grid[3].name.startswith("lambda-0.3_seed0-")
    assert grid[2].config["regularizer"]["kind"] == "monoloss" and grid[2].config["regularizer"]["lambda"] == 0.1
    assert load_config(grid[2].config).strength == 0.1  # a valid run config
    only = make_grid(config, None, "0,1", lambdas="0.1")
    assert [(r.kind, r.lam, r.seed) for r in only] == [("monoloss", 0.1, 0), ("monoloss", 0.1, 1)]
    with pytest.raises(SweepError, match="--lambdas"):
        make_grid(config, None, "0")
    with pytest.raises(SweepError, match="lambda 'x' is not a number"):
        make_grid(config, None, "0", lambdas="x")
