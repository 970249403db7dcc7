"""Draw each condition's mean of one metric in an exploratory and a confirmatory sweep, side by side.

The figure docs/results.md uses to show a shared control's draw: every condition's mean with its 95%
t interval over seeds, the exploratory sweep's left of the confirmatory sweep's, and the plain
control's interval shaded across the panel, so that a reader sees when a whole table moved with it.

    python tools/two_draws_figure.py runs/two-knobs/results.csv runs/two-knobs-confirm/results.csv \
        --metric adv_acc/worst/2/255 --label "worst-case adversarial accuracy, L-inf 2/255" --out fig.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from selectivity.analysis.stats import mean_ci  # noqa: E402


def condition(frame: pd.DataFrame) -> pd.Series:
    """'plain', 'alpha -0.5', 'lambda +0.3', ... for each run of a two-knob sweep."""
    def name(row) -> str:
        if row["kind"] == "monoloss":
            return f"lambda {row['lambda']:+g}"
        return "plain" if row["alpha"] == 0 else f"alpha {row['alpha']:+g}"
    return frame.apply(name, axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exploratory")
    parser.add_argument("confirmatory")
    parser.add_argument("--metric", required=True)
    parser.add_argument("--label", default=None)
    parser.add_argument("--scale", type=float, default=100.0, help="multiply values (default 100: points)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    frames = {"exploratory": pd.read_csv(args.exploratory), "confirmatory": pd.read_csv(args.confirmatory)}
    for key, frame in frames.items():
        if args.metric not in frame.columns:
            parser.error(f"{key} results have no column {args.metric!r}")
        frame["condition"] = condition(frame)
    order = sorted(set(frames["exploratory"].condition),
                   key=lambda c: (c.startswith("lambda"), 0.0 if c == "plain" else float(c.split()[1])))
    fig, ax = plt.subplots(figsize=(9, 3.8), layout="constrained")
    colours = {"exploratory": "#4c72b0", "confirmatory": "#dd8452"}
    for offset, (key, frame) in zip((-0.15, 0.15), frames.items()):
        means, halves, labels = [], [], []
        for i, name in enumerate(order):
            values = frame.loc[frame.condition == name, args.metric].to_numpy(float)
            values = values[np.isfinite(values)]
            mean, low, high = mean_ci(values)
            means.append(mean * args.scale)
            halves.append((high - mean) * args.scale)
            labels.append(len(values))
            if name == "plain":
                ax.axhspan(low * args.scale, high * args.scale, color=colours[key], alpha=0.12, lw=0)
        x = np.arange(len(order)) + offset
        ax.errorbar(x, means, yerr=halves, fmt="o", color=colours[key], capsize=3,
                    label=f"{key} (seeds {int(frame.seed.min())}-{int(frame.seed.max())})")
        for xi, mean, n in zip(x, means, labels):
            ax.annotate(f"{n}", (xi, mean), textcoords="offset points", xytext=(4, -10), fontsize=7,
                        color=colours[key])
    ax.set_xticks(np.arange(len(order)), order, rotation=30, ha="right")
    ax.set_ylabel(args.label or args.metric)
    ax.set_title(f"{args.label or args.metric}: mean and 95% t interval over seeds (n beside each point); "
                 "shaded: plain training's interval", fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(args.out, dpi=120)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
