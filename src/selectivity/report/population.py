"""The report's "Removed or moved?" section: linear decodability and the axis gap of each layer
against alpha (and MonoLoss's lambda), from the results' ``probe_acc/<layer>`` and
``axis_gap/<layer>`` columns (each run's population.csv, `selectivity analyze --population`).

If lowering selectivity leaves the probe's accuracy where plain training has it while the
axis gap shrinks, the class information moved off the unit axes into mixtures of units rather
than left the layer.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import figures
from .cells import cell_columns

__all__ = ["population_sections"]


def population_sections(root: Path, alpha_runs: pd.DataFrame, lambda_runs: pd.DataFrame | None,
                        level: float = 0.95) -> list[tuple[str, str, list[tuple[Path, str, bool]]]]:
    """The section (title, HTML intro, figures) when some completed run has population columns, else []."""
    ci = f"{int(level * 100)}%"
    paths = []
    for knob, runs, exempt in (("alpha", alpha_runs, ()),
                               ("lambda", lambda_runs, ("regularizer.lambda", "regularizer.kind"))):
        if runs is None or not any(c.startswith(("probe_acc/", "axis_gap/")) for c in runs.columns):
            continue
        figure = figures.plot_population(runs, root / f"population_vs_{knob}.png", level=level,
                                         by=cell_columns(runs, exempt=exempt) if exempt else cell_columns(runs),
                                         knob=knob)
        if figure is not None:
            what = ("the SI runs and plain training (alpha = 0)" if knob == "alpha" else
                    "the MonoLoss runs and plain training (lambda = 0)")
            paths.append((figure, f"Each layer's linear probe accuracy (top) and axis gap (bottom) against {knob}, "
                                  f"for {what}: means over seeds with {ci} t intervals, single seeds as small dots, "
                                  "the baseline's interval as a grey band; the dashed line is a gap of 0.", True))
    if not paths:
        return []
    intro = ("From each run's <code>population.csv</code> (<code>selectivity analyze --population</code>): the test "
             "accuracy of a multinomial logistic regression fitted on the layer's responses to the training images "
             "(its L2 strength chosen on a held-out 20%), and the axis gap, the units' mean one-class preference "
             "(SI of their class means shifted so that the lowest is 0) minus that of the directions of random "
             "orthonormal bases of the same space. Is class information removed from the layer, or moved off the "
             "unit axes? Decodability that holds while the gap shrinks means moved.")
    return [("Removed or moved? Class information in the whole layer", intro, paths)]
