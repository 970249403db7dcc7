"""Grids of runs, the executors that train them, and their results table.

``run_sweep(config, alphas, seeds, out, executor="local")`` trains every (alpha, seed)
resumably; ``run_one`` is the picklable job each executor runs. alpha < 0 discourages
selectivity, alpha > 0 encourages it.
"""

from .backends import EXECUTORS, make_executor
from .executors import DebugExecutor, Executor, Job, JobFailed, LocalExecutor
from .grid import GridRun, SweepError, load_sweep_config, make_grid, parse_alphas, parse_seeds, run_id
from .manifest import Manifest, SweepPaths
from .results import RESULT_COLUMNS, collect_results
from .runner import SweepOutcome, run_one, run_sweep
from .slurm import SlurmExecutor, SlurmResources

__all__ = [
    "EXECUTORS",
    "DebugExecutor",
    "Executor",
    "GridRun",
    "Job",
    "JobFailed",
    "LocalExecutor",
    "Manifest",
    "RESULT_COLUMNS",
    "SlurmExecutor",
    "SlurmResources",
    "SweepError",
    "SweepOutcome",
    "SweepPaths",
    "collect_results",
    "load_sweep_config",
    "make_executor",
    "make_grid",
    "parse_alphas",
    "parse_seeds",
    "run_id",
    "run_one",
    "run_sweep",
]
