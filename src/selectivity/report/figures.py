"""Figures people would rather look at than read: matplotlib, written as PNG."""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import SymLogNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..runs import atomic_write  # noqa: E402

__all__ = [
    "CURVES",
    "alpha_colors",
    "plot_accuracy_vs_selectivity",
    "plot_adversarial_accuracy",
    "plot_corruption_accuracy",
    "plot_dimensionality_by_layer",
    "plot_similarity_to_baseline",
    "plot_layer_selectivity",
    "plot_measure_agreement",
    "plot_metric_vs_alpha",
    "plot_population",
    "plot_si_distribution",
    "plot_selectivity_over_training",
    "plot_training_curves",
]

BASELINE_GREY = "#8c8c8c"


def _plain_text(plot):
    """Draw ``plot`` with every text as written: a '$' in a data folder's or a run's name is a dollar sign,
    not the start of a math formula (matplotlib's mathtext, which fails on an unbalanced one)."""

    @functools.wraps(plot)
    def drawn(*args, **kwargs):
        with plt.rc_context({"text.parse_math": False}):
            return plot(*args, **kwargs)

    return drawn


def _save(fig, path: str | Path) -> Path:
    """Lay out, write as PNG and free the figure: the one ending of every plot."""
    fig.tight_layout()
    try:  # written whole or not at all; a full or read-only disk names the figure
        # tight: a colour bar's label and a long title are inside the picture, never cut at its edge
        atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=130, format="png", bbox_inches="tight",
                                                         pad_inches=0.15))
    finally:
        plt.close(fig)
    return Path(path)


def _alpha_norm(alphas) -> SymLogNorm:
    """A diverging scale symmetric around alpha = 0, logarithmic past |alpha| = 0.1."""
    top = max(float(np.max(np.abs(alphas))), 0.1)
    return SymLogNorm(linthresh=0.1, vmin=-top, vmax=top, base=10)


def alpha_colors(alphas) -> tuple[list, SymLogNorm]:
    """Blue for alpha < 0 (less selective), red for alpha > 0, grey for the baseline."""
    norm = _alpha_norm(alphas)
    cmap = plt.get_cmap("coolwarm")
    return [BASELINE_GREY if a == 0 else cmap(norm(a)) for a in alphas], norm


def _colorbar(fig, ax, norm) -> None:
    mappable = plt.cm.ScalarMappable(norm=norm, cmap="coolwarm")
    bar = fig.colorbar(mappable, ax=ax)
    bar.set_label("alpha  (< 0 discourages selectivity, > 0 encourages it)")


@_plain_text
def plot_accuracy_vs_selectivity(results: pd.DataFrame, path: str | Path, title: str = "", zoom: bool = False) -> Path:
    """The seed's figure: test accuracy against mean SI, one point per run, coloured by alpha.

    With ``zoom``, a second panel shows the high-accuracy region (runs within 5 points of
    the best).
    """
    done = results[results["status"] == "completed"].dropna(subset=["test_acc", "mean_si"])
    colors, norm = alpha_colors(done["alpha"].to_numpy())
    panels = 2 if zoom else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 4.6), squeeze=False)
    near_best = (done["test_acc"] >= done["test_acc"].max() - 0.05).to_numpy()
    for k, ax in enumerate(axes[0]):
        rows = done if k == 0 else done[near_best]
        cols = colors if k == 0 else [c for c, keep in zip(colors, near_best) if keep]
        ax.scatter(rows["mean_si"], 100 * rows["test_acc"], c=cols, s=60, edgecolors="black", linewidths=0.6, zorder=3)
        # One label per alpha, on a drawn point: the run itself with one seed, else a cross at
        # the mean of the seeds (a label in the void between seeds reads as a missing point).
        for alpha, group in rows.groupby("alpha"):
            x, y = group["mean_si"].mean(), 100 * group["test_acc"].mean()
            if len(group) > 1:
                ax.scatter([x], [y], marker="+", s=90, color="black", linewidths=1.2, zorder=4)
            ax.annotate(f"{alpha:g}", (x, y), textcoords="offset points", xytext=(6, 5), fontsize=8)
        one_seed = k == 0 and "seed" in rows.columns and rows.groupby("alpha")["seed"].nunique().max() < 2
        ax.set_xlabel("mean class selectivity (test set)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.set_title("high-accuracy region" if k else (title or "accuracy vs selectivity"))
        if one_seed:  # under the axis, off the points: a finding needs seeds
            ax.set_xlabel("mean class selectivity (test set)\n"
                          "one seed per alpha: differences may be seed noise (test them with --seeds 0,1,2)",
                          fontsize=8)
    _colorbar(fig, axes[0][-1], norm)
    return _save(fig, path)


@_plain_text
def plot_layer_selectivity(results: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Mean SI of each layer against depth, one line per alpha (mean over seeds)."""
    layer_cols = [c for c in results.columns if c.startswith("si/")]
    done = results[results["status"] == "completed"]
    by_alpha = done.groupby("alpha")[layer_cols].mean().sort_index()
    colors, norm = alpha_colors(by_alpha.index.to_numpy())
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    depth = np.arange(1, len(layer_cols) + 1)
    for (alpha, row), color in zip(by_alpha.iterrows(), colors):
        ax.plot(depth, row.to_numpy(), marker="o", color=color, label=f"{alpha:g}", lw=2 if alpha == 0 else 1.4)
    ax.set_xticks(depth, [c[3:] for c in layer_cols], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("layer (by depth)")
    ax.set_ylabel("mean class selectivity")
    ax.set_title(title or "selectivity by layer")
    ax.grid(alpha=0.3)
    _colorbar(fig, ax, norm)
    return _save(fig, path)


def _symlog_alpha_axis(ax, alphas) -> None:
    """alpha on a symmetric-log axis: linear within the smallest non-zero |alpha|, log beyond."""
    nonzero = np.abs(np.asarray([a for a in alphas if a != 0], dtype=float))
    ax.set_xscale("symlog", linthresh=float(nonzero.min()) if nonzero.size else 0.1, linscale=0.6)
    ticks = sorted(set(float(a) for a in alphas))
    if len(ticks) <= 12:
        ax.set_xticks(ticks, [f"{a:g}" for a in ticks], fontsize=8)
        ax.minorticks_off()
    ax.axvline(0, color=BASELINE_GREY, lw=0.8, ls=":", zorder=1)
    ax.set_xlabel("alpha  (symlog scale; < 0 discourages selectivity, > 0 encourages it)", fontsize=9)


def _seed_ci(values: np.ndarray, level: float) -> tuple[float, float, float]:
    """Mean and Student-t interval over seeds (NaN interval with one seed)."""
    from ..analysis.stats import mean_ci

    mean, low, high = mean_ci(values, level)
    return float(mean), float(low), float(high)


def _metric_panel(ax, done: pd.DataFrame, metric: str, scale: float, level: float,
                  bounds: tuple[float, float] | None = None, knob: str = "alpha") -> None:
    """One cell's metric against alpha: seeds as dots, mean and t interval, the baseline's band.

    ``bounds``: the metric's possible range (accuracy 0-100%): the axis never shows values the
    metric cannot take; an interval that reaches past it is cut at the edge and says so."""
    alphas = np.sort(done["alpha"].astype(float).unique())
    colors, _ = alpha_colors(alphas)
    summary = []
    for alpha, color in zip(alphas, colors):
        values = scale * done.loc[done["alpha"] == alpha, metric].to_numpy(dtype=float)
        mean, low, high = _seed_ci(values, level)
        summary.append((alpha, mean, low, high))
        jitter = (np.arange(values.size) - (values.size - 1) / 2) * 0.015
        ax.scatter(alpha * (1 + jitter) if alpha else jitter * 0.1, values, s=12, color=color, alpha=0.55,
                   edgecolors="none", zorder=2)
        if np.isfinite(low):
            if bounds is not None:
                low, high = max(low, bounds[0]), min(high, bounds[1])
            ax.errorbar(alpha, mean, yerr=[[mean - low], [high - mean]], fmt="none", ecolor="black", elinewidth=1.2,
                        capsize=3, zorder=3)
        ax.scatter(alpha, mean, s=58, color=color, edgecolors="black", linewidths=0.7, zorder=4)
    if summary:
        xs, means = [s[0] for s in summary], [s[1] for s in summary]
        ax.plot(xs, means, color="black", lw=0.8, alpha=0.5, zorder=2)
        base = [s for s in summary if s[0] == 0]
        if base and np.isfinite(base[0][2]):
            ax.axhspan(base[0][2], base[0][3], color=BASELINE_GREY, alpha=0.18, lw=0, zorder=0,
                       label=f"baseline ({knob} = 0) {int(level * 100)}% CI")
            ax.legend(loc="best", fontsize=8, frameon=False)
        _symlog_alpha_axis(ax, alphas)
        if knob == "lambda":
            ax.set_xlabel("lambda  (symlog scale; < 0 penalizes monosemantic units, > 0 rewards them)", fontsize=9)
        seeds = done.groupby("alpha")["seed"].nunique().min() if "seed" in done.columns else 1
        if seeds < 3:
            note = ("one seed per alpha: no interval; differences may be seed noise" if seeds < 2 else
                    f"{seeds} seeds: the t interval has {seeds - 1} degree(s) of freedom and is wide; run 3 or more")
            ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="#a33", va="bottom")
    if bounds is not None:
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, bounds[0]), min(high, bounds[1]))
    ax.grid(alpha=0.3)


@_plain_text
def plot_metric_vs_alpha(results: pd.DataFrame, metric: str, path: str | Path, title: str = "",
                         ylabel: str | None = None, percent: bool = False, level: float = 0.95,
                         by: list[str] | tuple[str, ...] = (), knob: str = "alpha") -> Path:
    """A metric against alpha (or ``knob="lambda"``: against MonoLoss's lambda): mean over seeds
    with its ``level`` t interval, seeds as dots.

    The baseline's interval (alpha = 0) is drawn as a grey band across the plot, so an
    alpha whose interval leaves the band is visibly different. Completed runs only. ``by``:
    columns that split the runs into cells (model, dataset, ...): one panel per cell, so
    different models are never averaged together.
    """
    done = results[results["status"] == "completed"].dropna(subset=[metric])
    if knob != "alpha":  # the panel draws its x column under the name alpha
        done = done.assign(alpha=pd.to_numeric(done[knob], errors="coerce").fillna(0.0))
    scale = 100.0 if percent else 1.0
    by = [c for c in by if c in done.columns]
    cells = list(done.groupby(by, dropna=False, sort=True)) if by else []
    if len(cells) <= 1:
        cells = [((), done)]
    columns = min(len(cells), 3)
    rows = -(-len(cells) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.4 * columns, 4.4 * rows), squeeze=False)
    heading = title or f"{metric} against {knob} (mean and {int(level * 100)}% CI over seeds)"
    bounds = (0.0, 100.0) if percent else ((0.0, 1.0) if metric == "mean_si" or metric.startswith("si/") else None)
    for ax, (key, frame) in zip(axes.flat, cells):
        _metric_panel(ax, frame, metric, scale, level, bounds, knob)
        ax.set_ylabel(ylabel or metric)
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{k}={v}" for k, v in zip(by, key)) if len(cells) > 1 else ""
        ax.set_title(f"{heading}\n{label}" if label else heading, fontsize=10 if label else None)
    for ax in list(axes.flat)[len(cells):]:
        ax.set_visible(False)
    return _save(fig, path)


#: The rows of :func:`plot_population`: (results column prefix, axis label, percent).
POPULATION_ROWS = (("probe_acc", "linear probe accuracy (%)", True),
                   ("axis_gap", "axis gap (units - random directions)", False))


@_plain_text
def plot_population(results: pd.DataFrame, path: str | Path, title: str = "", level: float = 0.95,
                    by: list[str] | tuple[str, ...] = (), knob: str = "alpha") -> Path | None:
    """Removed or moved? Per layer (columns, in the results' order), the linear probe's test
    accuracy (top) and the axis gap (bottom) against alpha (or ``knob="lambda"``), from the
    ``probe_acc/<layer>`` and ``axis_gap/<layer>`` columns (`selectivity analyze --population`):
    means over seeds with their ``level`` t interval, seeds as dots, the baseline's band. The
    gap panels mark 0 (units no more class-selective than random directions). One pair of rows
    per cell of ``by``. None when the results have neither column.
    """
    done = results[results["status"] == "completed"]
    if knob != "alpha":
        done = done.assign(alpha=pd.to_numeric(done[knob], errors="coerce").fillna(0.0))
    layers = list(dict.fromkeys(c.split("/", 1)[1] for c in done.columns
                                if c.split("/", 1)[0] in ("probe_acc", "axis_gap") and "/" in c))
    if not layers:
        return None
    by = [c for c in by if c in done.columns]
    cells = list(done.groupby(by, dropna=False, sort=True)) if by else []
    if len(cells) <= 1:
        cells = [((), done)]
    rows = len(POPULATION_ROWS) * len(cells)
    fig, axes = plt.subplots(rows, len(layers), figsize=(4.6 * len(layers), 3.6 * rows), squeeze=False)
    for i, (key, frame) in enumerate(cells):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{k}={v}" for k, v in zip(by, key)) if len(cells) > 1 else ""
        for j, (prefix, ylabel, percent) in enumerate(POPULATION_ROWS):
            for ax, layer in zip(axes[len(POPULATION_ROWS) * i + j], layers):
                metric = f"{prefix}/{layer}"
                data = frame.dropna(subset=[metric]) if metric in frame.columns else frame.iloc[0:0]
                if data.empty:
                    ax.set_visible(False)
                    continue
                _metric_panel(ax, data, metric, 100.0 if percent else 1.0, level,
                              (0.0, 100.0) if percent else None, knob)
                if not percent:
                    ax.axhline(0, color="#a33", lw=0.8, ls="--", zorder=1)
                ax.set_xlabel(f"{knob} (symlog)", fontsize=9)  # the long label is in the title
                ax.set_ylabel(ylabel, fontsize=9)
                ax.set_title(f"{layer}" + (f"\n{label}" if label else ""), fontsize=10)
    meaning = ("< 0 discourages selectivity, > 0 encourages it" if knob == "alpha" else
               "< 0 penalizes monosemantic units, > 0 rewards them")
    fig.suptitle(title or f"class information per layer against {knob} ({meaning}; mean and {int(level * 100)}% "
                          "CI over seeds)")
    return _save(fig, path)


#: The training curves drawn, as (metrics.jsonl key, axis label, scale).
CURVES = (("train_loss", "train loss", 1.0), ("test_acc", "test accuracy (%)", 100.0),
          ("batch_si", "batch selectivity (train)", 1.0))


@_plain_text
def plot_training_curves(curves: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Train loss, test accuracy and batch SI per epoch, one line per condition (mean over seeds).

    curves: one row per (run, epoch) with columns alpha, seed, epoch and the keys of
    :data:`CURVES` (test_acc is NaN at epochs without an evaluation; those are skipped), and
    optionally ``condition`` (``html.load_curves`` gives each run its schedule, else its alpha): runs
    of two schedules that share an alpha are two lines, never one average. Without it, one line
    per alpha. Colour is alpha; the schedules of one alpha differ in line style.
    """
    curves = curves.copy()
    if "condition" not in curves.columns:
        curves["condition"] = [f"alpha {a:g}" for a in curves["alpha"].astype(float)]
    alphas = np.sort(curves["alpha"].astype(float).unique())
    colors, norm = alpha_colors(alphas)
    color_of = dict(zip(alphas, colors))
    lines = []  # (condition, alpha, line style), alphas in order, conditions of one alpha in order of appearance
    for alpha in alphas:
        conditions = list(dict.fromkeys(curves.loc[curves["alpha"].astype(float) == alpha, "condition"]))
        lines += [(c, alpha, ("-", "--", ":", "-.")[k % 4]) for k, c in enumerate(conditions)]
    several = len(lines) > len(alphas)
    fig, axes = plt.subplots(1, len(CURVES), figsize=(5.0 * len(CURVES), 4.2), squeeze=False, sharex=True)
    for ax, (key, label, scale) in zip(axes[0], CURVES):
        if key not in curves.columns:
            ax.text(0.5, 0.5, f"no {key} logged", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        for condition, alpha, style in lines:
            rows = curves[(curves["condition"] == condition) & (curves["alpha"].astype(float) == alpha)]
            mean = rows.dropna(subset=[key]).groupby("epoch")[key].mean()
            ax.plot(mean.index + 1, scale * mean.to_numpy(), color=color_of[alpha], ls=style,
                    lw=2.2 if alpha == 0 else 1.4, marker="o" if len(mean) < 12 else None,
                    ms=3 if len(mean) > 1 else 6, label=condition if several else f"{alpha:g}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if key == "train_loss" and (curves[key].dropna() > 0).all():
            ax.set_yscale("log")
    if several:  # the colour bar alone cannot tell two schedules of one alpha apart
        axes[0][0].legend(fontsize=7, frameon=False, loc="best")
    fig.suptitle(title or "training curves (mean over seeds)")
    _colorbar(fig, axes[0][-1], norm)
    return _save(fig, path)


@_plain_text
def plot_si_distribution(units: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Distribution of unit SI per alpha (all layers and seeds pooled): violins with quartiles.

    units: one row per unit with columns alpha and si (as in each run's si_per_unit.csv).
    """
    alphas = np.sort(units["alpha"].astype(float).unique())
    colors, norm = alpha_colors(alphas)
    data = [units.loc[units["alpha"] == a, "si"].to_numpy(dtype=float) for a in alphas]
    positions = np.arange(len(alphas))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.62 * len(alphas) + 2.5), 4.4))
    # A kernel density needs spread: alphas whose units all share one SI get the bars only.
    spread = [i for i, d in enumerate(data) if d.size > 1 and np.ptp(d) > 0]
    bodies = ax.violinplot([data[i] for i in spread], positions=positions[spread], widths=0.8,
                           showextrema=False)["bodies"] if spread else []
    for body, color in zip(bodies, [colors[i] for i in spread]):
        body.set_facecolor(color)
        body.set_edgecolor("black")
        body.set_linewidth(0.6)
        body.set_alpha(0.85)
    quartiles = np.array([np.percentile(d, [25, 50, 75]) for d in data])
    ax.vlines(positions, quartiles[:, 0], quartiles[:, 2], color="black", lw=3)
    ax.scatter(positions, quartiles[:, 1], color="white", edgecolors="black", s=22, zorder=3, label="median")
    ax.set_xticks(positions, [f"{a:g}" for a in alphas])
    ax.set_xlabel("alpha  (< 0 discourages selectivity, > 0 encourages it)")
    ax.set_ylabel("class selectivity index of a unit")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_title(title or "SI across units (all layers and seeds)")
    return _save(fig, path)


# --------------------------------------------------------------------------- robustness and representations
# Inputs come from the run directories (see selectivity.commands.evaluate): each frame holds one
# row per (run, measurement) with the run's alpha and seed.


def _lines_by_alpha(ax, frame: pd.DataFrame, x: str, y: str, scale: float = 1.0):
    """One line per alpha: the mean of ``y`` over seeds at each ``x``; returns the colour norm."""
    alphas = np.sort(frame["alpha"].astype(float).unique())
    colors, norm = alpha_colors(alphas)
    for alpha, color in zip(alphas, colors):
        rows = frame[frame["alpha"] == alpha]
        mean = rows.groupby(x)[y].mean().sort_index()
        ax.plot(mean.index, scale * mean.to_numpy(), marker="o", ms=4, color=color, lw=2.2 if alpha == 0 else 1.4,
                label=f"{alpha:g}")
    return norm


@_plain_text
def plot_corruption_accuracy(robust: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Mean accuracy over the corruptions at each severity (0: clean), one line per alpha.

    robust: rows of robustness.csv (kind, name, level, accuracy) with alpha and seed.
    """
    rows = robust[robust["kind"].isin(["corruption", "clean"])].copy()
    rows["severity"] = np.where(rows["kind"] == "clean", 0, rows["level"]).astype(int)
    # mean over corruptions per run first, then over seeds
    per_run = rows.groupby(["alpha", "seed", "severity"], as_index=False)["accuracy"].mean()
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    norm = _lines_by_alpha(ax, per_run, "severity", "accuracy", 100.0)
    ax.set_xticks(sorted(per_run["severity"].unique()),
                  ["clean" if s == 0 else str(s) for s in sorted(per_run["severity"].unique())])
    ax.set_xlabel("corruption severity")
    ax.set_ylabel("accuracy (%), mean over corruptions")
    ax.set_title(title or "corruption accuracy by severity")
    ax.grid(alpha=0.3)
    _colorbar(fig, ax, norm)
    return _save(fig, path)


@_plain_text
def plot_adversarial_accuracy(robust: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Accuracy under each attack against epsilon (x 255; 0: clean), one panel per attack, one line per alpha."""
    attacks = sorted(robust.loc[robust["kind"] == "attack", "name"].unique())
    clean = robust[robust["kind"] == "clean"]
    fig, axes = plt.subplots(1, len(attacks), figsize=(5.6 * len(attacks) + 1, 4.4), squeeze=False)
    norm = None
    for ax, attack in zip(axes[0], attacks):
        rows = pd.concat([robust[(robust["kind"] == "attack") & (robust["name"] == attack)],
                          clean.assign(level=0.0)], ignore_index=True)
        rows = rows.assign(eps255=np.round(rows["level"].astype(float) * 255, 3))
        rows = rows.groupby(["alpha", "seed", "eps255"], as_index=False)["accuracy"].mean()
        norm = _lines_by_alpha(ax, rows, "eps255", "accuracy", 100.0)
        ax.set_xlabel("epsilon (× 1/255, L-inf)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(attack.upper())
        ax.grid(alpha=0.3)
    fig.suptitle(title or "adversarial accuracy by epsilon")
    if norm is not None:
        _colorbar(fig, axes[0][-1], norm)
    return _save(fig, path)


DIM_INPUTS = ("clean", "corrupted", "adversarial")


@_plain_text
def plot_dimensionality_by_layer(dims: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """pc95 (top) and participation ratio (bottom) of each layer by depth, per input kind, one line per alpha.

    dims: rows of analysis_dimensionality.csv (input, layer, pc95, participation_ratio) with
    alpha, seed and layer_index (depth).
    """
    inputs = [i for i in DIM_INPUTS if i in set(dims["input"])] or sorted(dims["input"].unique())
    fig, axes = plt.subplots(2, len(inputs), figsize=(4.6 * len(inputs) + 1, 7.4), squeeze=False, sharex=True,
                             layout="constrained")
    layers = dims.drop_duplicates("layer_index").sort_values("layer_index")
    norm = None
    for col, name in enumerate(inputs):
        rows = dims[dims["input"] == name]
        for row, (key, label) in enumerate((("pc95", "PCs for 95% variance"),
                                            ("participation_ratio", "participation ratio"))):
            ax = axes[row][col]
            norm = _lines_by_alpha(ax, rows, "layer_index", key)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(name)
            else:
                ax.set_xticks(layers["layer_index"], layers["layer"], rotation=40, ha="right", fontsize=7)
                ax.set_xlabel("layer (by depth)")
    fig.suptitle(title or "dimensionality of each layer's representation")
    if norm is not None:
        _colorbar(fig, [row[-1] for row in axes], norm)
    try:
        # tight: a colour bar's label and a long title are inside the picture, never cut at its edge
        atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=130, format="png", bbox_inches="tight",
                                                         pad_inches=0.15))
    finally:
        plt.close(fig)
    return Path(path)


@_plain_text
def plot_similarity_to_baseline(sim: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """PWCCA (left) and unbiased linear CKA (right) to the alpha = 0 run of the same seed against alpha,
    one line per layer (coloured by depth).

    sim: one row per (run, layer) with alpha, seed, layer, layer_index, pwcca, cka.
    """
    measures = [m for m in ("pwcca", "cka") if m in sim.columns]
    fig, axes = plt.subplots(1, len(measures), figsize=(6.0 * len(measures) + 1, 4.4), squeeze=False)
    layers = sim.drop_duplicates("layer_index").sort_values("layer_index")
    cmap = plt.get_cmap("viridis")
    alphas = np.sort(sim["alpha"].astype(float).unique())
    for ax, measure in zip(axes[0], measures):
        for k, (index, layer) in enumerate(zip(layers["layer_index"], layers["layer"])):
            rows = sim[sim["layer_index"] == index].groupby("alpha")[measure].mean().sort_index()
            ax.plot(rows.index, rows.to_numpy(), marker="o", ms=4, lw=1.3,
                    color=cmap(k / max(1, len(layers) - 1)), label=layer)
        _symlog_alpha_axis(ax, alphas)
        ax.set_ylabel(f"{'PWCCA' if measure == 'pwcca' else 'linear CKA (unbiased)'} to alpha = 0")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="best", fontsize=7, frameon=False, ncol=2 if len(layers) > 8 else 1, title="layer")
    fig.suptitle(title or "similarity to the baseline network, per layer")
    return _save(fig, path)


@_plain_text
def plot_selectivity_over_training(rows: pd.DataFrame, path: str | Path, title: str = "",
                                   level: float = 0.95) -> Path:
    """Mean SI of each stage against the epoch: one panel per stage, one line per condition.

    rows: si_over_training.csv rows of every run with ``condition`` and ``seed`` columns. Per
    run and recording, SI is averaged over the stage's units; the line is the mean over seeds
    with its ``level`` t interval as a band (none with one seed).
    """
    per_run = rows.groupby(["condition", "seed", "stage", "epoch"], as_index=False)["si"].mean()
    stages = list(dict.fromkeys(rows["stage"]))
    conditions = list(dict.fromkeys(rows["condition"]))
    fig, axes = plt.subplots(1, len(stages), figsize=(3.6 * len(stages) + 1.0, 3.6), squeeze=False, sharey=True)
    cmap = plt.get_cmap("tab10")
    for ax, stage in zip(axes[0], stages):
        for k, condition in enumerate(conditions):
            frame = per_run[(per_run["stage"] == stage) & (per_run["condition"] == condition)]
            table = frame.pivot_table(index="epoch", columns="seed", values="si")
            stats = np.array([_seed_ci(row.dropna().to_numpy(), level) for _, row in table.iterrows()])
            if not len(stats):
                continue
            ax.plot(table.index, stats[:, 0], color=cmap(k % 10), lw=1.6, marker="o", ms=2.5,
                    label=f"{condition} (n={table.shape[1]})")
            if np.isfinite(stats[:, 1]).any():
                ax.fill_between(table.index, np.clip(stats[:, 1], 0, 1), np.clip(stats[:, 2], 0, 1),
                                color=cmap(k % 10), alpha=0.18, lw=0)  # SI lies in [0, 1]
        ax.set_title(stage, fontsize=10)
        ax.set_xlabel("epoch (0 = initialization)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean class selectivity (SI)")
    axes[0][-1].legend(fontsize=7, frameon=False, loc="best")
    fig.suptitle(title or f"Selectivity over training: mean and {int(level * 100)}% CI over seeds", fontsize=10)
    return _save(fig, path)


@_plain_text
def plot_measure_agreement(agreement: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Spearman rank correlation between every pair of selectivity measures across units.

    agreement: rows of measure_agreement.csv (layer, measure_a, measure_b, spearman) of one or
    more runs; each cell is the mean over layers and runs (Gale et al. report it per layer).
    """
    mean = agreement.groupby(["measure_a", "measure_b"])["spearman"].mean()
    names = list(dict.fromkeys(list(agreement["measure_a"]) + list(agreement["measure_b"])))
    grid = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(grid, 1.0)
    for (a, b), value in mean.items():
        i, j = names.index(a), names.index(b)
        grid[i, j] = grid[j, i] = value
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(names), 0.6 + 0.55 * len(names)))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(grid[i, j]) > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    fig.colorbar(image, ax=ax, label="Spearman rank correlation across units")
    layers, runs = agreement["layer"].nunique(), agreement["run"].nunique() if "run" in agreement else 1
    ax.set_title(title or f"Agreement of selectivity measures (mean over {layers} layers, {runs} run(s))",
                 fontsize=9)
    return _save(fig, path)
