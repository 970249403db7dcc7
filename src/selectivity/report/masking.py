"""The report's gradient-masking section: each run's masking.csv (`selectivity robustness`) as a table.

A flagged check means the white-box robust accuracy of that run, at that epsilon, may be an
artefact of gradients that mislead the attacks (see :mod:`selectivity.analysis.attacks.masking`), and
so may the adversarial claims that rest on it. The section lists every flag with what it saw;
when nothing is flagged it says which checks ran, so that a silent page never reads as a pass
of checks that did not run.
"""

from __future__ import annotations

import html
import warnings
from pathlib import Path

import pandas as pd

from ..runs import RunPaths, eps_label
from ..runs.summary import main_image_set

__all__ = ["load_masking", "masking_sections"]

_COLUMNS = {"eps", "check", "flagged", "detail"}


def load_masking(runs: list[tuple[float, object, Path]]) -> pd.DataFrame:
    """Every run's masking.csv with its alpha and seed; ``runs`` holds (alpha, seed, run dir)."""
    frames = []
    for alpha, seed, run_dir in runs:
        path = RunPaths(run_dir).masking
        if not path.is_file():
            continue
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as err:
            warnings.warn(f"{path} is unreadable ({err}); left out", stacklevel=2)
            continue
        if not _COLUMNS <= set(frame.columns):
            warnings.warn(f"{path} lacks the columns {', '.join(sorted(_COLUMNS))}; left out", stacklevel=2)
            continue
        frames.append(main_image_set(frame).assign(alpha=alpha, seed=seed, run=run_dir.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _state(value) -> str:
    """masking.csv's flagged column: 'True', 'False' or empty (not checked)."""
    if pd.isna(value):
        return "not checked"
    return "flagged" if str(value) == "True" else "passed"


def masking_sections(runs) -> list[tuple[str, str, list]]:
    """The "Gradient masking" section (title, HTML, no figures) when some run has a masking.csv, else [].

    ``runs`` yields (alpha, seed, run dir) of the completed runs.
    """
    table = load_masking(list(runs))
    if table.empty:
        return []
    table = table.assign(state=[_state(v) for v in table["flagged"]])
    flagged = table[table["state"] == "flagged"].sort_values(["alpha", "seed", "eps", "check"])
    n_runs = table["run"].nunique()
    counts = table.groupby("check")["state"].value_counts().unstack(fill_value=0)
    ran = ", ".join(f"{check} ({int(row.get('passed', 0)) + int(row.get('flagged', 0))} checked, "
                    f"{int(row.get('flagged', 0))} flagged)" for check, row in counts.iterrows())
    if flagged.empty:
        verdict = (f"<p>No check flagged, over {n_runs} run(s) and their epsilons: {html.escape(ran)}. "
                   "A check that did not run (its attacks were not asked for) is not a pass.</p>")
    else:
        rows = "".join(
            f"<tr><td class='num'>{r.alpha:g}</td><td class='num'>{html.escape(str(r.seed))}</td>"
            f"<td class='num'>{eps_label(float(r.eps))}</td><td><code>{html.escape(str(r.check))}</code></td>"
            f"<td>{html.escape(str(r.detail))}</td></tr>" for r in flagged.itertuples(index=False))
        verdict = (f"<p><b class='bad'>Gradient masking suspected: {len(flagged)} flag(s) in "
                   f"{flagged['run'].nunique()} of {n_runs} run(s).</b> Where a run is flagged, its white-box "
                   "robust accuracy at that epsilon may be an artefact of misleading gradients, and so may the "
                   "adversarial claims above; the <code>worst</code> rows (every attack run, Square included) "
                   f"are the ones to trust. Checks: {html.escape(ran)}.</p>"
                   "<div class='scroll'><table><thead><tr><th>alpha</th><th>seed</th><th>epsilon</th><th>check</th>"
                   f"<th>what it saw</th></tr></thead><tbody>{rows}</tbody></table></div>")
    intro = ("From each run's <code>masking.csv</code> (<code>selectivity robustness --attacks "
             "fgsm,pgd,apgd-ce,apgd-dlr,square</code>). <code>blackbox</code>: Square (no gradients) fools images "
             "on which every white-box attack failed; <code>epsilon</code>: white-box accuracy does not fall as "
             "epsilon grows; <code>apgd-vs-pgd</code>: APGD well below PGD; <code>gradient</code>: input gradients "
             f"zero or not finite on a share of the images.</p>{verdict}<p>")
    return [("Gradient masking", intro, [])]
