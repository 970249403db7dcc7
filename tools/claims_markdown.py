"""Print a claims.csv (from `selectivity report DIR [--confirm DIR2]`) as the Markdown table of docs/results.md.

One row per (claim, comparison): the exploratory estimate with its 95% interval, p and verdict, and,
for a confirmed report, the confirmatory seeds, estimate, one-sided p, verdict and whether the
claim's finding replicated. Accuracies (metrics with "acc" in their name) are in points.

    python tools/claims_markdown.py runs/two-knobs/claims.csv [--claims id,id,...] > table.md
"""

from __future__ import annotations

import argparse
import math
import sys

import pandas as pd


def _number(metric: str, value: float, scale: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if scale == "ratio":
        return f"x{value:.3f}"
    if "acc" in metric and scale != "slope":
        return f"{100 * value:+.2f} pts"
    return f"{value:+.4f}"


def _interval(row, prefix: str = "") -> str:
    metric, scale = row["metric"], row.get("scale", "difference")
    estimate = _number(metric, row[f"{prefix}estimate"], scale)
    low, high = row[f"{prefix}ci_low"], row[f"{prefix}ci_high"]
    if pd.isna(low):
        return estimate
    return f"{estimate} [{_number(metric, low, scale)}, {_number(metric, high, scale)}]"


def _p(value) -> str:
    if pd.isna(value):
        return "—"
    return f"{value:.2g}" if value >= 1e-4 else "< 1e-4"


def markdown(frame: pd.DataFrame, claims: list[str] | None = None) -> str:
    confirmed = "confirm_estimate" in frame.columns
    frame = frame[frame["comparison"].notna()]
    if claims:
        frame = frame[frame["claim"].isin(claims)]
    head = "| claim | comparison | exploratory estimate [95% CI] | p | verdict |"
    rule = "|---|---|---|---:|---|"
    if confirmed:
        head += " seeds | confirmatory estimate [95% CI] | p (one-sided) | verdict | finding: replicated? |"
        rule += "---:|---|---:|---|---|"
    lines = [head, rule]
    for _, row in frame.iterrows():
        line = (f"| `{row['claim']}` | {row['comparison']} | {_interval(row)} | {_p(row['p_support'])} | "
                f"{row['alpha_verdict'] if row.get('finding') != 'written after exploration' else 'no test'} |")
        if confirmed:
            if pd.isna(row.get("confirm_estimate")):
                line += " — | not re-tested | — | — | |"
            else:
                replicated = row["replicated"] if isinstance(row["replicated"], str) and row["replicated"] else "—"
                line += (f" {int(row['confirm_n_group'])} | {_interval(row, 'confirm_')} | "
                         f"{_p(row['confirm_p_support'])} | {row['confirm_alpha_verdict']} | "
                         f"{row['finding']}: {replicated} |")
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("claims_csv")
    parser.add_argument("--claims", help="comma-separated claim ids, in the table's order (default: every claim)")
    args = parser.parse_args(argv)
    frame = pd.read_csv(args.claims_csv)
    wanted = args.claims.split(",") if args.claims else None
    if wanted:
        frame = frame.assign(_o=frame["claim"].map({c: i for i, c in enumerate(wanted)})).sort_values(
            ["_o", "alpha"], kind="stable")
    print(markdown(frame, wanted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
