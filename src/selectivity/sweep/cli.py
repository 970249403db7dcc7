"""`selectivity sweep`: a grid of alphas x seeds, through local processes or SLURM.

Wired into the main CLI by ``add_sweep_parser(subparsers)``; user mistakes raise
:class:`~selectivity.sweep.grid.SweepError` or ``ConfigError`` (one line, exit 2).
"""

from __future__ import annotations

import argparse

from .backends import EXECUTORS

__all__ = ["add_sweep_parser"]

# A dead unit has SI 0: mean SI is shown with the dead fraction and the live units' mean SI beside it.
_SHOWN = ["kind", "alpha", "lambda", "schedule", "seed", "status", "test_acc", "mean_si", "dead_fraction",
          "mean_si_live", "epochs", "wall_seconds"]


def _sweep(args: argparse.Namespace) -> int:
    from .runner import run_sweep

    outcome = run_sweep(args.config, args.alphas, args.seeds, args.out, executor=args.executor, jobs=args.jobs,
                        retries=args.retries, overrides=args.set, wait=not args.no_wait,
                        progress=not args.no_progress, schedules=args.schedules, stack=args.stack,
                        lambdas=args.lambdas)
    table = outcome.results
    if len(table):
        shown = [c for c in _SHOWN if c in table.columns and table[c].notna().any()]
        print(table[shown].to_string(index=False, float_format="%.4f"))
    print(f"results: {outcome.csv}" + (f" and {outcome.parquet}" if outcome.parquet else ""))
    if outcome.unfinished:
        print(f"{len(outcome.unfinished)} run(s) queued or running ({outcome.submitted} submitted now); "
              "run the same command again to wait for them")
    if outcome.failed:
        print(f"{len(outcome.failed)} run(s) failed: {', '.join(outcome.failed)} (see failed.json in each; "
              "run the same command again to retry them)")
        return 1
    return 0


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``sweep`` sub-command to an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser(
        "sweep", help="train a grid of alphas x seeds (local processes or SLURM), resumably",
        description="Train every (alpha, seed) into a run directory in DIR, then write DIR/results.csv and .parquet. "
                    "Running the same command again skips finished runs, resumes partial ones and waits "
                    "for SLURM jobs still queued or running. alpha < 0 discourages selectivity, > 0 encourages it.")
    p.add_argument("config", help="a preset name (see configs/) or a YAML file; it may hold a slurm: section")
    p.add_argument("--alphas", nargs="+", metavar="A",
                   help="comma- or space-separated: --alphas -1,0,1 or --alphas -1 0 1")
    p.add_argument("--schedules", nargs="+", metavar="S",
                   help="instead of --alphas: per-epoch alpha schedules, comma-separated, each in Ranadive et "
                        "al.'s form VALUE*EPOCHS ...: --schedules='0*20,-20*20,0*5 -20*15'")
    p.add_argument("--lambdas", nargs="+", metavar="L",
                   help="MonoLoss strengths (regularizer.kind=monoloss, label embeddings), beside or instead of "
                        "--alphas: --lambdas 0.03,0.1,0.3; lambda > 0 rewards monosemantic units")
    p.add_argument("--seeds", nargs="+", required=True, metavar="S", help="comma-separated integers, e.g. 0,1,2")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="the sweep directory (sweep.json, run directories, results)")
    p.add_argument("--executor", default="local", metavar="NAME",
                   help=f"{', '.join(EXECUTORS)} (default local: one process per run)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="runs at once (local: processes, default 1; slurm: job array parallelism)")
    p.add_argument("--stack", type=int, metavar="M",
                   help="with --executor stacked: networks trained at once as one stacked model (default: all)")
    p.add_argument("--retries", type=int, default=1, metavar="N",
                   help="extra attempts for a run that fails, each resuming from its checkpoint (default 1)")
    p.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                   help="override a config key (train.epochs=6) or a SLURM resource (slurm.time=120, "
                        "slurm.cpus_per_task, slurm.gpus, slurm.mem, slurm.partition)")
    p.add_argument("--no-wait", action="store_true", help="SLURM: submit and return; run again to collect")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_sweep)
    return p
