"""The main job on bundled real data: the alpha knob on a CIFAR-10 subset, on a CPU."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from ..report.figures import plot_accuracy_vs_selectivity, plot_layer_selectivity
from ..runs import run_name
from ..sweep.results import collect_results
from ..config import load_config
from ..train.trainer import load_data, train

__all__ = ["DEMO_ALPHAS", "run_demo"]

#: From strongly discouraging (alpha < 0) to strongly encouraging (alpha > 0) selectivity.
#: The positive side stops at +1: in the demo's 8 epochs, larger alphas silence most units
#: (a dead unit has SI 0) and mean SI falls again while accuracy collapses.
DEMO_ALPHAS = (-5.0, -2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0)


def default_jobs() -> int:
    """Runs at once: one per core, at most two (each run uses one thread, see configs/demo.yaml)."""
    return max(1, min(2, os.cpu_count() or 1))


def run_demo(out: str | Path = "runs/demo", alphas=DEMO_ALPHAS, seed: int = 0, overrides=None,
             progress: bool = True, jobs: int | None = None) -> dict[str, Path]:
    """Train the demo model once per alpha, then write the results table and figures.

    ``jobs`` runs train at once in separate processes, each on one thread: one thread per run
    keeps the time steady on a machine that is busy with something else, where a thread pool
    spread over every core waits for the slowest core at each step.
    """
    out = Path(out)
    jobs = default_jobs() if jobs is None else jobs
    configs = [load_config("demo", [*(overrides or []), f"regularizer.alpha={alpha}", f"train.seed={seed}"])
               for alpha in alphas]
    run_dirs = [out / run_name(alpha, seed) for alpha in alphas]
    if jobs <= 1:
        for config, run_dir in zip(configs, run_dirs):
            train(config, run_dir, progress=progress)
    else:
        load_data(configs[0], progress=progress)  # decode the cache once, before the workers read it
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(train, config, run_dir, False) for config, run_dir in zip(configs, run_dirs)]
            bar = tqdm(total=len(futures), desc=f"demo: {len(futures)} runs, {jobs} at once", unit="run",
                       disable=not progress)
            for future in as_completed(futures):
                future.result()
                bar.update()
            bar.close()
    results = collect_results(run_dirs)
    table = out / "results.csv"
    results.to_csv(table, index=False)
    figure = plot_accuracy_vs_selectivity(results, out / "accuracy_vs_selectivity.png",
                                          title=f"demo: resnet_demo on CIFAR-10 subset, seed {seed}")
    layers = plot_layer_selectivity(results, out / "selectivity_by_layer.png", title="demo: selectivity by layer")
    return {"results": table, "figure": figure, "layers": layers}
