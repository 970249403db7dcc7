"""The main job on bundled real data: the alpha knob on a CIFAR-10 subset, on a CPU."""

from __future__ import annotations

from pathlib import Path

from ..report.figures import plot_accuracy_vs_selectivity, plot_layer_selectivity
from ..runs import run_name
from ..sweep.results import collect_results
from ..train.config import load_config
from ..train.trainer import train

__all__ = ["DEMO_ALPHAS", "run_demo"]

#: From strongly discouraging (alpha < 0) to strongly encouraging (alpha > 0) selectivity.
#: The positive side stops at +1: in the demo's 8 epochs, larger alphas silence most units
#: (a dead unit has SI 0) and mean SI falls again while accuracy collapses.
DEMO_ALPHAS = (-5.0, -2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0)


def run_demo(out: str | Path = "runs/demo", alphas=DEMO_ALPHAS, seed: int = 0, overrides=None,
             progress: bool = True) -> dict[str, Path]:
    """Train the demo model once per alpha, then write the results table and figures."""
    out = Path(out)
    run_dirs = []
    for alpha in alphas:
        config = load_config("demo", [*(overrides or []), f"regularizer.alpha={alpha}", f"train.seed={seed}"])
        run_dir = out / run_name(alpha, seed)
        train(config, run_dir, progress=progress)
        run_dirs.append(run_dir)
    results = collect_results(run_dirs)
    table = out / "results.csv"
    results.to_csv(table, index=False)
    figure = plot_accuracy_vs_selectivity(results, out / "accuracy_vs_selectivity.png",
                                          title=f"demo: resnet_demo on CIFAR-10 subset, seed {seed}")
    layers = plot_layer_selectivity(results, out / "selectivity_by_layer.png", title="demo: selectivity by layer")
    return {"results": table, "figure": figure, "layers": layers}
