"""The sweep report: figures as PNG files, claims with statistics, one self-contained HTML page.

    DIR/
      report.html                  the page: every image inlined as a base64 data URI,
                                   inline CSS, no script, nothing fetched
      claims.csv                   the verdict table: one row per (claim, cell, alpha)
      accuracy_vs_selectivity.png  the seed's figure, with the high-accuracy zoom
      accuracy_vs_alpha.png        mean and 95% CI over seeds, symlog alpha axis
      selectivity_vs_alpha.png
      selectivity_by_layer.png     per-layer SI against depth, one line per alpha
      training_curves.png          from each run's metrics.jsonl (when present)
      si_distribution.png          from each run's si_per_unit.csv (when present)
      corruption_accuracy.png      from each run's robustness.csv (`selectivity robustness`)
      adversarial_accuracy.png
      dimensionality_by_layer.png  from each run's analysis.json (`selectivity analyze`)
      similarity_to_baseline.png
      population_vs_alpha.png      from each run's population.csv (`selectivity analyze --population`;
      population_vs_lambda.png     lambda: when the sweep has MonoLoss runs)

The results are read from DIR's run directories (``final.json``, ``failed.json``, each run's
``config.yaml`` and the evaluations' files); ``DIR/results.csv`` is used only where no run
directory is left. Every planned run counts: a run of the sweep's manifest (``sweep.json``)
or a run directory with a config.yaml but neither final.json nor failed.json is a row with
status ``unfinished``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..analysis.stats import mean_ci
from ..runs import atomic_write, write_text
from ..runs.summary import main_image_set
from . import figures
from .cells import WITHIN_CELL, assign_cells, cell_columns
from .claims import (
    BOOTSTRAP_MIN_SEEDS,
    INCONCLUSIVE,
    NOT_TESTED,
    REFUTED,
    SUPPORTED,
    ClaimResult,
    ReportError,
    claims_table,
    evaluate_claims,
    load_claims,
)
from .claims.confirm import Confirmation, ConfirmationPlan, confirm_claims, confirmation_table, plan_confirmation
from .confirmation import confirmation_section, plan_section
from .masking import masking_sections
from .population import population_sections

__all__ = ["ReportOutputs", "build_report", "load_analysis", "load_curves", "load_robustness", "load_sweep",
           "load_units", "render_page"]

RESULTS_CSV = "results.csv"
REPORT_HTML = "report.html"
CLAIMS_CSV = "claims.csv"


@dataclass
class ReportOutputs:
    """What :func:`build_report` wrote, and the claims' verdicts."""

    page: Path
    figures: dict[str, Path] = field(default_factory=dict)
    claims: list[ClaimResult] = field(default_factory=list)
    table: Path | None = None  # claims.csv
    plan: ConfirmationPlan | None = None  # the seeds and the command of a confirmation sweep
    confirmations: list[Confirmation] | None = None  # with --confirm: each claim's confirmatory test


# --------------------------------------------------------------------------- inputs


def load_sweep(sweep_dir: str | Path) -> pd.DataFrame:
    """The results table of a sweep directory, rebuilt from its run directories.

    The run directories are the record and ``results.csv`` only a copy of it (which a crash or
    a copy can cut short), so the table is read from every run directory with a final.json or
    failed.json; ``results.csv`` is used alone only where no run directory is left. Planned runs
    that have not finished (in ``sweep.json``, or a run directory with only a config.yaml) are
    rows with status ``unfinished``: claims count them.
    """
    from ..sweep.results import collect_results

    root = Path(sweep_dir)
    if not root.is_dir():
        raise ReportError(f"{root} is not a directory: expected a sweep directory with run directories in it")
    table = root / RESULTS_CSV
    run_dirs = sorted(p for p in root.iterdir() if (p / "final.json").is_file() or (p / "failed.json").is_file())
    planned = _unfinished(root, {p.name for p in run_dirs})
    if run_dirs or planned:
        results = collect_results(run_dirs)
        if planned:
            frames = [f for f in (results, pd.DataFrame(planned)) if len(f)]
            with warnings.catch_warnings():  # all-empty columns of one side (None settings) are fine
                warnings.simplefilter("ignore", FutureWarning)
                results = pd.concat(frames, ignore_index=True)
        source = f"the {len(run_dirs) + len(planned)} run directories of {root}"
    elif table.exists():
        source = str(table)
        try:
            results = pd.read_csv(table)
        except (OSError, ValueError) as err:  # pandas' EmptyDataError is a ValueError
            raise ReportError(f"{table} is not a readable CSV table ({err})") from None
    else:
        raise ReportError(f"{root} holds no results: neither {RESULTS_CSV} nor run directories with a final.json")
    missing = [c for c in ("alpha", "seed", "status") if c not in results.columns]
    if missing:
        raise ReportError(f"{source} lacks the column(s) {missing} "
                          "(expected one row per run: alpha, seed, status, ...)")
    if results.empty:
        raise ReportError(f"{source} has no runs, and {root} no run directory with a final.json")
    results = results.copy()
    results["alpha"] = results["alpha"].astype(float)
    return results


def _unfinished(root: Path, finished: set[str]) -> list[dict]:
    """Rows of the planned runs without final.json or failed.json: from the sweep's manifest, and
    from run directories that hold only a config.yaml (training started, never ended)."""
    from ..runs.summary import unfinished_row

    rows, seen = [], set(finished)
    manifest = root / "sweep.json"
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            entries, base = list((data.get("runs") or {}).values()), data.get("base_config")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as err:
            warnings.warn(f"{manifest} is unreadable ({err}); planned runs are read from the run directories only",
                          stacklevel=3)
            entries, base = [], None
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("dir"), str):
                continue
            run_dir = root / entry["dir"]
            if run_dir.name in seen or (run_dir / "final.json").is_file() or (run_dir / "failed.json").is_file():
                continue
            rows.append(unfinished_row(run_dir, entry, base if isinstance(base, dict) else None))
            seen.add(run_dir.name)
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir() and (p / "config.yaml").is_file()):
        if run_dir.name not in seen:
            rows.append(unfinished_row(run_dir))
            seen.add(run_dir.name)
    return [r for r in rows if r.get("alpha") is not None]


def _run_dirs(sweep_dir: Path, results: pd.DataFrame):
    """(alpha, seed, run dir) of each completed run whose directory is known."""
    if "run" not in results.columns:
        return
    for row in results[results["status"] == "completed"].itertuples(index=False):
        if isinstance(row.run, str) and (sweep_dir / row.run).is_dir():
            yield float(row.alpha), row.seed, sweep_dir / row.run


def load_curves(sweep_dir: str | Path, results: pd.DataFrame) -> pd.DataFrame:
    """Every completed run's metrics.jsonl, one row per (run, epoch), with its alpha, seed, run_dir and
    condition (its schedule, else its alpha: two schedules may share an alpha).

    A line that is not JSON (a run killed while writing) is skipped with a warning.
    """
    frames = []
    for alpha, seed, run_dir in _run_dirs(Path(sweep_dir), results):
        path = run_dir / "metrics.jsonl"
        if not path.is_file():
            continue
        rows = []
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:  # not a torn last line: the file itself is damaged
            raise ReportError(f"{path} is not UTF-8 text (byte {err.start}); restore or remove it") from None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{number} is not JSON; line skipped", stacklevel=2)
        if rows:
            frame = pd.DataFrame(rows)
            frame["alpha"], frame["seed"] = alpha, seed  # the run's alpha, not alpha_now of the warm-up
            frame["run_dir"] = run_dir.name
            frames.append(frame)
    return _with_condition(pd.concat(frames, ignore_index=True), results) if frames else pd.DataFrame()


def _load_run_csvs(sweep_dir: str | Path, results: pd.DataFrame, name: str, columns: set[str],
                   select=None) -> pd.DataFrame:
    """Every completed run's ``name`` CSV with alpha and seed; unreadable or incomplete ones are left out.
    ``select`` picks the rows of each run's frame (e.g. its main image set)."""
    frames = []
    for alpha, seed, run_dir in _run_dirs(Path(sweep_dir), results):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as err:
            warnings.warn(f"{path} is unreadable ({err}); left out", stacklevel=3)
            continue
        if not columns <= set(frame.columns):
            warnings.warn(f"{path} lacks the columns {', '.join(sorted(columns))}; left out", stacklevel=3)
            continue
        frame = frame if select is None else select(frame).copy()
        frame["alpha"], frame["seed"], frame["run_dir"] = alpha, seed, run_dir.name
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_over_training(sweep_dir: str | Path, results: pd.DataFrame) -> pd.DataFrame:
    """Every completed run's si_over_training.csv with its seed and condition (schedule, else alpha)."""
    rows = _load_run_csvs(sweep_dir, results, "si_over_training.csv", {"epoch", "stage", "si"})
    return rows if rows.empty else _with_condition(rows, results)


def _with_condition(rows: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (with alpha and run_dir) with a ``condition``: the run's schedule, else its alpha."""
    schedules = {}
    if "schedule" in results.columns and "run" in results.columns:  # two schedules may share an alpha
        schedules = {r.run: r.schedule for r in results.itertuples(index=False) if isinstance(r.schedule, str)}
    rows["condition"] = [f"schedule {schedules[d]}" if d in schedules else f"alpha {a:g}"
                         for a, d in zip(rows["alpha"], rows["run_dir"])]
    return rows


def load_units(sweep_dir: str | Path, results: pd.DataFrame) -> pd.DataFrame:
    """Every completed run's si_per_unit.csv (layer, layer_index, unit, si, ...) with alpha and seed."""
    return _load_run_csvs(sweep_dir, results, "si_per_unit.csv", {"si"})


def load_robustness(sweep_dir: str | Path, results: pd.DataFrame) -> pd.DataFrame:
    """Every completed run's robustness.csv (kind, name, level, accuracy) on its largest image set, with
    alpha and seed (the set the results columns read: :func:`selectivity.runs.summary.main_image_set`)."""
    return _load_run_csvs(sweep_dir, results, "robustness.csv", {"kind", "name", "level", "accuracy"},
                          select=main_image_set)


def load_analysis(sweep_dir: str | Path, results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From every completed run's analysis.json: (dimensionality rows, similarity rows), with alpha and seed.

    Dimensionality: input, layer, layer_index, pc95, participation_ratio; similarity: layer,
    layer_index, pwcca, cka (only runs compared with a baseline).
    """
    dims, sims = [], []
    for alpha, seed, run_dir in _run_dirs(Path(sweep_dir), results):
        path = run_dir / "analysis.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
            order = {name: i for i, name in enumerate(data["layers"])}
            for kind, per_layer in data["dimensionality"].items():
                for layer, values in per_layer.items():
                    dims.append({"alpha": alpha, "seed": seed, "input": kind, "layer": layer,
                                 "layer_index": order.get(layer, len(order)), "pc95": values.get("pc95"),
                                 "participation_ratio": values.get("participation_ratio")})
            sim = data.get("similarity")
            if sim:
                for layer, value in sim.get("pwcca", {}).items():
                    sims.append({"alpha": alpha, "seed": seed, "layer": layer,
                                 "layer_index": order.get(layer, len(order)), "pwcca": value,
                                 "cka": sim.get("cka", {}).get(layer)})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            warnings.warn(f"{path} is unreadable ({err}); left out", stacklevel=2)
    dim_frame = pd.DataFrame(dims) if dims else pd.DataFrame()
    if not dim_frame.empty:
        dim_frame[["pc95", "participation_ratio"]] = dim_frame[["pc95", "participation_ratio"]].astype(float)
    sim_frame = pd.DataFrame(sims) if sims else pd.DataFrame()
    if not sim_frame.empty:
        sim_frame[["pwcca", "cka"]] = sim_frame[["pwcca", "cka"]].astype(float)
    return dim_frame, sim_frame


# --------------------------------------------------------------------------- formatting


def _is_fraction_accuracy(metric: str) -> bool:
    """Accuracy columns hold fractions; the page shows them in percent (points)."""
    return "acc" in metric


def _num(value: float, digits: int = 3, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return text.replace("-", "−")


def _metric_value(metric: str, value: float, signed: bool = False) -> str:
    if _is_fraction_accuracy(metric):
        return _num(100 * value, 2, signed) + (" pts" if signed else " %")
    return _num(value, 4, signed)


def _plain(metric: str, value: float) -> str:
    """A metric's value without its unit: accuracy in percent with 2 decimals, others with 4."""
    return _num(100 * value, 2) if _is_fraction_accuracy(metric) else _num(value, 4)


def _p(p: float) -> str:
    if math.isnan(p):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _seeds_text(n: float) -> str:
    if math.isnan(n):
        return "—"
    return "> 1000" if math.isinf(n) else f"{int(n)}"


def _needs(support: float, refute: float) -> str:
    """Seeds per alpha a decisive answer would take, each way ('' when unknown)."""
    if math.isnan(support) and math.isnan(refute):
        return ""
    return (f"seeds to support: {_seeds_text(support)}, to refute: {_seeds_text(refute)} "
            "(if the observed effect and spread are the truth)")


def _estimate(claim, comparison) -> str:
    low, high = comparison.ci
    if comparison.scale == "ratio":
        ci = "" if math.isnan(low) else f" [{_num(low, 2)}, {_num(high, 2)}]"
        return f"×{_num(comparison.estimate, 2)}{ci}"
    if comparison.scale == "slope":
        ci = "" if math.isnan(low) else f" [{_num(low, 4, True)}, {_num(high, 4, True)}]"
        return f"slope {_num(comparison.estimate, 4, True)}{ci}"
    ci = ("" if math.isnan(low)
          else f" [{_metric_value(claim.metric, low, True)}, {_metric_value(claim.metric, high, True)}]")
    return _metric_value(claim.metric, comparison.estimate, True) + ci


def _badge(verdict: str) -> str:
    return f'<span class="badge {verdict.replace(" ", "-")}">{html.escape(verdict)}</span>'


def _e(text) -> str:
    return html.escape(str(text))


# --------------------------------------------------------------------------- page sections


def _effect(comp) -> str:
    if math.isnan(comp.effect_size):
        return "—"
    return f"{_e(comp.effect_name)} {_g(comp.effect_size)}"


def _comparison_cells(claim, comp) -> str:
    return (f"<td>{_seeds_cell(comp)}</td>"
            f"<td class='num'>{_estimate(claim, comp)}<div class='sub'>{_e(comp.interval)}</div>"
            f"{_sides(claim, comp)}{_dunnett(claim, comp)}</td>"
            f"<td class='num'>{_effect(comp)}</td>"
            f"<td class='num'>{_p(comp.p_value)}{_holm_support(comp)}</td>"
            f"<td class='num'>{_p(comp.p_against)}</td>")


def _sides(claim, comp) -> str:
    """Each side's own mean and t interval: the condition's and the control's (a draw every comparison
    against that control shares)."""
    if comp.scale == "slope" or math.isnan(comp.mean_group):
        return ""

    def side(mean, ci):
        low, high = ci
        interval = "" if math.isnan(low) else f" [{_plain(claim.metric, low)}, {_plain(claim.metric, high)}]"
        return f"{_plain(claim.metric, mean)}{interval}"

    other = "level" if claim.is_level else "control"
    return (f"<div class='sub'>m = {side(comp.mean_group, comp.ci_group)}; {other} "
            f"{side(comp.mean_baseline, comp.ci_baseline) if not claim.is_level else _plain(claim.metric, claim.value)}"
            "</div>")


def _dunnett(claim, comp) -> str:
    low, high = comp.dunnett_ci
    if math.isnan(low):
        return ""
    return (f"<div class='sub'>Dunnett (all conditions at once): [{_metric_value(claim.metric, low, True)}, "
            f"{_metric_value(claim.metric, high, True)}], p {_p(comp.dunnett_p)}</div>")


def _one_sided_note(claim, comp) -> str:
    """Why 'supported' can stand beside a two-sided interval that reaches past the claim's boundary: the
    claim is one-sided, and its test is at the claim's level on one side only."""
    if comp.verdict != SUPPORTED or claim.side == "equivalence" or comp.scale == "slope":
        return ""
    low, high = comp.ci
    boundary = claim.ratio if comp.scale == "ratio" else claim.null
    if math.isnan(low) or not low <= boundary <= high:
        return ""
    side = ">" if claim.side == "greater" else "<"
    return (f"<div class='sub'>one-sided: p = {_p(comp.p_value)} &lt; {claim.alpha_level:g} for "
            f"estimate {side} {_num(boundary, 4)}; the two-sided {int(round(100 * (1 - claim.alpha_level * 2)))}% "
            "interval shown reaches past it</div>")


def _df_warning(comp) -> str:
    """Two seeds give a t test one degree of freedom: said beside the numbers, as the figures say it."""
    n = min(comp.n_group, comp.n_baseline) if comp.scale != "slope" else comp.n_group
    return "<div class='sub bad'>2 seeds: 1 degree of freedom</div>" if n == 2 else ""


def _holm_support(comp) -> str:
    """The claim's p after Holm over the cell's alphas, when it differs (the alpha's own verdict uses it)."""
    if math.isnan(comp.p_support_holm) or comp.p_support_holm == comp.p_value:
        return ""
    return f"<div class='sub'>Holm {_p(comp.p_support_holm)}</div>"


def _claims_section(results: list[ClaimResult], level: float) -> str:
    if not results:
        return "<p>No claims were given.</p>"
    counts = {v: sum(r.verdict == v for r in results) for v in (SUPPORTED, REFUTED, INCONCLUSIVE, NOT_TESTED)}
    chips = " ".join(f"{_badge(v)} × {n}" for v, n in counts.items() if n)
    shared = _control_users(results)
    rows = []
    untested = [r for r in results if r.verdict == NOT_TESTED]
    for r in results:
        if r.verdict == NOT_TESTED:
            continue
        c = r.claim
        source = f"<div class='source'>{_e(c.source)}</div>" if c.source else ""
        over = f"{len(r.cells)} cells: supported only when every cell is" if len(r.cells) > 1 else ""
        detail = "; ".join(x for x in (r.reason, over) if x)
        rule = f"<div class='rule'>{_e(c.failed_text)}</div>" if c.failed_text else ""
        rows.append(
            "<tr class='claim'>"
            f"<td colspan='6'><div class='statement'>{_e(c.statement)}</div>"
            f"<div class='sub'><span class='cid'>{_e(c.id)}</span> · H<sub>1</sub>: <code>{_e(c.hypothesis())}</code>"
            f" · {_e(c.test)} on <b>{_e(c.metric)}</b>, level {c.alpha_level:g}</div>{source}"
            + (f"<div class='why'>{_e(detail)}</div>" if detail else "") + _shared_control(r, shared) + "</td>"
            f"<td>{_badge(r.verdict)}{rule}</td>"
            "</tr>"
        )
        for cell in r.cells:
            one = cell.comparisons[0] if len(cell.comparisons) == 1 else None
            needs = _needs(cell.seeds_to_support, cell.seeds_to_refute) if cell.verdict == INCONCLUSIVE else ""
            note = "; ".join(x for x in (cell.reason if len(r.cells) > 1 else "", needs) if x)
            label = _e(cell.label) + (f"<div class='sub'>{_e(one.label)}</div>{_failed_runs(one)}" if one else "")
            body = (_comparison_cells(c, one) if one else
                    f"<td>{len(cell.comparisons)} alphas</td><td></td><td></td>"
                    f"<td class='num'>{_p(cell.p_value)}</td><td></td>" if cell.comparisons else
                    "<td colspan='5'></td>")
            why_one = _one_sided_note(c, one) if one is not None and cell.verdict == SUPPORTED else ""
            rows.append(f"<tr class='cell'><td class='indent'>{label}</td>{body}"
                        f"<td>{_badge(cell.verdict)}{why_one}<div class='sub'>{_e(note)}</div></td></tr>")
            if len(cell.comparisons) > 1:
                for comp in cell.comparisons:
                    rows.append("<tr class='comparison'>"
                                f"<td class='indent2'>{_e(comp.label)}{_failed_runs(comp)}</td>"
                                f"{_comparison_cells(c, comp)}"
                                f"<td>{_alpha_badge(cell, comp, c)}</td></tr>")
    head = ("<tr><th class='wide'>claim · cell · comparison (m = the metric's mean over seeds)</th><th>seeds</th>"
            f"<th>estimate [{int(level * 100)}% CI]</th><th>effect</th><th>p (claim)</th>"
            "<th>p against (Holm)</th><th>verdict</th></tr>")
    table = (f"<div class='scroll'><table class='claims'><thead>{head}</thead><tbody>{''.join(rows)}</tbody>"
             "</table></div>") if rows else ""
    skipped = ""
    if untested:
        items = "".join(f"<li><span class='cid'>{_e(r.claim.id)}</span>: {_e(r.claim.statement)}"
                        f"<div class='sub'>{_e(r.reason)}</div></li>" for r in untested)
        skipped = (f"<details><summary>{len(untested)} claim(s) not tested on this sweep</summary>"
                   f"<ul class='notes'>{items}</ul></details>")
    return (f"<p class='chips'>{chips}</p>{table}{skipped}"
            "<p class='sub'>The same verdicts, one row per (claim, cell, alpha), are in <code>claims.csv</code> "
            "beside this page.</p>")


def _control_key(result: ClaimResult) -> tuple | None:
    """Which control runs a contrast claim compares with: its condition column and baseline value."""
    c = result.claim
    if c.is_trend or c.is_level or not result.comparisons:
        return None
    return (c.by, c.baseline)


def _control_users(results: list[ClaimResult]) -> dict:
    """control -> the claims that compare with it (over any metric): one draw of the control underlies all."""
    users: dict = {}
    for r in results:
        key = _control_key(r)
        if key is not None:
            users.setdefault(key, []).append(r.claim.id)
    return users


def _shared_control(result: ClaimResult, shared: dict) -> str:
    """Beside a claim over several conditions: they share one control, whose own mean and interval are shown
    (a high or low draw of it moves every comparison at once), and how many claims lean on it."""
    key = _control_key(result)
    if key is None:
        return ""
    by, baseline = key
    comps = [c for c in result.comparisons if not math.isnan(c.mean_baseline)]
    if not comps:
        return ""
    first = comps[0]
    low, high = first.ci_baseline
    metric = result.claim.metric
    interval = "" if math.isnan(low) else f" [{_plain(metric, low)}, {_plain(metric, high)}]"
    conditions = len({c.alpha for c in result.comparisons})
    others = len(shared.get(key, [])) - 1
    lean = (f"; {conditions} conditions are compared with this one control" if conditions > 1 else "")
    more = f"; {others} other claim(s) of this report compare with the same control runs" if others > 0 else ""
    return (f"<div class='control'>control {_e(by)} = {baseline:g}: m = {_plain(metric, first.mean_baseline)}"
            f"{interval} over {first.n_baseline} seeds{lean}{more}</div>")


def _alpha_badge(cell, comp, claim=None) -> str:
    """One alpha's verdict, Holm-adjusted on both sides. Where the claim is supported in the cell
    (every alpha at once, by the intersection-union test) but this alpha alone does not pass
    Holm, it shows without a verdict colour."""
    if comp.verdict == INCONCLUSIVE and cell.verdict == SUPPORTED:
        return "<span class='sub'>holds within the supported claim (not alone after Holm)</span>"
    return _badge(comp.verdict) + (_one_sided_note(claim, comp) if claim is not None else "")


def _g(value: float) -> str:
    return _num(value, 1 if abs(value) >= 10 else 2)


def _failed_runs(comp) -> str:
    """The planned runs of a comparison that gave no value, under its label."""
    if not comp.n_failed:
        return ""
    return f"<div class='sub bad'>{comp.n_failed} run(s) without a value: {_e(comp.failed_runs)}</div>"


def _seeds_cell(comp) -> str:
    if comp.scale == "slope":
        design = "per-seed slopes" if comp.paired else "networks, one per seed"
        return f"{comp.n_group}<div class='sub'>{design}</div>{_df_warning(comp)}"
    design = "no test" if min(comp.n_group, comp.n_baseline) < 2 else "paired" if comp.paired else "Welch"
    return f"{comp.n_group} vs {comp.n_baseline}<div class='sub'>{design}</div>{_df_warning(comp)}"


def _summary_table(results: pd.DataFrame, level: float) -> str:
    # Mean SI with its dead-unit fraction and live-unit SI: a dead unit has SI 0, so mean SI alone
    # mixes "not selective" with "silent".
    metrics = [m for m in ("test_acc", "mean_si", "dead_fraction", "mean_si_live") if m in results.columns]
    keys = cell_columns(results)
    results = assign_cells(results, keys)
    head = "<tr>" + "".join(f"<th>{_e(k)}</th>" for k in keys) + "<th>alpha</th><th>runs</th>" + "".join(
        f"<th>{_e(m)}{' (%)' if _is_fraction_accuracy(m) else ''}: mean [{int(level * 100)}% CI]</th>"
        for m in metrics) + "<th>train time / run</th></tr>"
    rows = []
    for key, group in results.groupby(keys + ["alpha"], dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        alpha = key[-1]
        done = group[group["status"] == "completed"]
        other = group["status"][group["status"] != "completed"].value_counts()
        runs = f"{len(done)} completed" + "".join(f", <span class='bad'>{n} {_e(s)}</span>" for s, n in other.items())
        cells = []
        for m in metrics:
            values = done[m].dropna().to_numpy(dtype=float)
            if values.size == 0:
                cells.append("<td class='num'>—</td>")
                continue
            mean, low, high = mean_ci(values, level)
            ci = "" if math.isnan(low) else f" [{_plain(m, low)}, {_plain(m, high)}]"
            cells.append(f"<td class='num'>{_plain(m, mean)}{ci}</td>")
        seconds = done["train_seconds"].dropna().mean() if "train_seconds" in done.columns else float("nan")
        time = "—" if math.isnan(seconds) else f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
        cls = " class='baseline'" if alpha == 0 else ""
        names = "".join(f"<td>{_e(v)}</td>" for v in key[:-1])
        rows.append(f"<tr{cls}>{names}<td class='num'>{alpha:g}</td><td>{runs}</td>{''.join(cells)}"
                    f"<td class='num'>{time}</td></tr>")
    return (f"<div class='scroll'><table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>"
            "<p class='sub'>Bold rows: the baseline, plain training (alpha = 0), that the claims compare "
            "with. Intervals are t intervals over the seeds of each row.</p>")


def _runs_table(results: pd.DataFrame) -> str:
    columns = [c for c in ("alpha", "seed", "status", "test_acc", "mean_si", "dead_fraction", "mean_si_live",
                           "epochs", "train_seconds", "run")
               if c in results.columns]
    layers = [c for c in results.columns if c.startswith("si/")]
    names = {"test_acc": "test_acc (%)", "train_seconds": "train s"}
    head = "<tr>" + "".join(f"<th>{_e(names.get(c, c))}</th>" for c in columns + layers) + "</tr>"
    rows = []
    for _, row in results.iterrows():
        cells = []
        for c in columns + layers:
            value = row[c]
            if c in ("status", "run"):
                cls = " class='bad'" if c == "status" and value != "completed" else ""
                cells.append(f"<td{cls}>{_e(value)}</td>")
            elif c == "alpha":
                cells.append(f"<td class='num'>{value:g}</td>")
            elif isinstance(value, (int, float, np.number)) and not pd.isna(value):
                text = (_plain(c, float(value)) if c == "test_acc" or c == "mean_si" or c.startswith("si/")
                        else f"{value:.0f}" if c == "train_seconds" else f"{value:g}")
                cells.append(f"<td class='num'>{text}</td>")
            else:
                cells.append("<td class='num'>—</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<details><summary>all {len(results)} runs, with per-layer selectivity</summary>"
            f"<div class='scroll'><table class='runs'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
            "</div></details>")


def _figure(path: Path, caption: str, wide: bool) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure class='{'wide' if wide else 'half'}'>"
            f"<img src='data:image/png;base64,{data}' alt='{_e(path.stem)}'>"
            f"<figcaption><b>{_e(path.name)}</b>. {caption}</figcaption></figure>")


_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Helvetica, Arial, sans-serif;
       color: #1d232b; background: #fff; margin: 0; line-height: 1.45; font-size: 15px; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #e4e8ee; }
.lead { color: #4a5563; margin: 0 0 6px; }
.meta { color: #6b7785; font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; margin: 8px 0; }
th { text-align: left; background: #f1f4f8; color: #334; font-weight: 600; padding: 7px 9px;
     border-bottom: 1px solid #d5dbe3; vertical-align: bottom; }
td { padding: 7px 9px; border-bottom: 1px solid #e7ebf0; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.baseline td { background: #f6f6f6; font-weight: 600; }
tr.comparison td { font-size: 12.5px; background: #fbfcfd; padding-top: 4px; padding-bottom: 4px; }
td.indent { padding-left: 20px; color: #4a5563; }
td.indent2 { padding-left: 40px; color: #4a5563; }
tr.claim td { background: #f7f9fb; border-top: 2px solid #d5dbe3; }
.statement { font-weight: 500; }
th.wide { width: 44%; }
.cid { font-weight: 600; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; color: #2b4a6f; }
.source, .sub { color: #6b7785; font-size: 12px; margin-top: 2px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; background: #f3f5f8;
       padding: 1px 4px; border-radius: 3px; white-space: nowrap; }
.badge { display: inline-block; padding: 2px 9px; border-radius: 11px; font-size: 12px; font-weight: 600;
         white-space: nowrap; }
.badge.supported { background: #d8f0dd; color: #1e6b32; }
.badge.refuted { background: #f8d7d7; color: #9b1c1c; }
.badge.inconclusive { background: #fcebc5; color: #8a5a00; }
.badge.not-tested { background: #e6e8eb; color: #555f6b; }
.chips { margin: 4px 0 10px; }
.bad { color: #9b1c1c; }
.figs { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 26px; }
figure { margin: 10px 0 18px; }
figure.wide { grid-column: 1 / -1; }
figure img { max-width: 100%; border: 1px solid #e4e8ee; border-radius: 4px; display: block; }
figcaption { color: #4a5563; font-size: 13.5px; margin-top: 6px; max-width: 900px; }
details summary { cursor: pointer; color: #2b4a6f; margin: 10px 0; }
.scroll { overflow-x: auto; }
table.runs td, table.runs th { padding: 4px 7px; font-size: 12px; }
.notes li { margin-bottom: 5px; }
.notice { background: #fff6e0; border-left: 4px solid #e0a400; padding: 8px 12px; }
.rule { color: #2b4a6f; font-size: 12px; margin-top: 3px; }
.why { color: #4a5563; font-size: 12.5px; margin-top: 4px; }
.sub.bad { color: #9b1c1c; }
.control { color: #2b4a6f; font-size: 12px; margin-top: 3px; }
th.nowrap { white-space: nowrap; }
table.confirm td.indent2 { white-space: nowrap; }
table.claims td.num div.sub { white-space: normal; min-width: 14em; }
table.claims td:nth-child(2) { min-width: 5.5em; }
main { overflow-wrap: anywhere; }
"""


def _methods(level: float, n_boot: int, interval: str) -> str:
    """The page's methods section (docs/claims.md says the same at more length)."""
    ci = f"{int(level * 100)}%"
    within = ", ".join(f"<code>{_e(k)}{'*' if k.endswith('.') else ''}</code>" for k in WITHIN_CELL)
    boot = (f"<li>Intervals were asked as percentile bootstraps ({n_boot} resamples); they are used only where "
            f"every group has {BOOTSTRAP_MIN_SEEDS} seeds or more (labelled so), t intervals elsewhere: with a "
            "handful of seeds a percentile bootstrap is the min-max range and covers far less than its label.</li>"
            if interval == "bootstrap" else "")
    return f"""
<ul class='notes'>
<li><b>Cells.</b> Runs are split into cells by <code>model</code>, <code>dataset</code> and every
training setting of the runs' own <code>config.yaml</code> (dotted names such as
<code>optim.weight_decay</code>) that differs between completed runs; alpha and seed never split, and
neither do {within}. Each claim is tested in every cell its <code>where</code> selects, with one verdict
per cell; a claim over several cells is supported only when every cell is.</li>
<li><b>Every planned run counts.</b> A run of the cell that gave no value of the metric (diverged, failed,
unfinished, or a value that is infinite or missing) is named beside the claim. Unless the claim says how
such runs score (<code>failed:</code> a value, <code>chance</code> or <code>exclude</code> in the claims
file, shown under its verdict), the claim is neither supported nor refuted in that cell: survivors alone
can turn a harmful setting into a harmless one.</li>
<li><b>Contrast claims.</b> H<sub>1</sub> is a statement about <code>c = m(group) − ratio × m(baseline)</code>,
m being the metric's mean over seeds. Seeds pair when both alphas hold the same seeds (paired t test on
the per-seed contrasts, n − 1 df); otherwise the groups are independent (Welch's t test, Satterthwaite's
df). p (claim) is the one-sided p of H<sub>1</sub> (an equivalence: the larger p of its two one-sided
tests, TOST); p against is the one-sided p of the contrary (an equivalence: twice the smaller p of
"above the margin" and "below minus the margin", so a true equivalence is refuted at most at the level).
Values with no spread at all give no test ("not testable: no spread"), unless the metric's resolution is
known (1 / n_test for accuracy): then the sd is floored at half a step and the estimate moved half a step
of its mean toward the null.</li>
<li><b>Trend and association claims</b> test the sign of a slope of the metric on alpha (or on a column
such as mean SI). The networks of one seed are not independent: the slope is fitted within each seed, on
the networks that seed has (a seed may lack an alpha), and the seeds' slopes get a one-sample t test
(seeds − 1 df). With one seed there is no test. Only when every seed has a single network are the networks
independent, and one least-squares slope over them is tested with N − 2 df.</li>
<li><b>Multiplicity.</b> Supported: every alpha of the claim (and every cell) rejects at the claim's level
(an intersection-union test, which needs no correction). Refuted: some alpha's test of the contrary
rejects after <b>Holm's adjustment over the claim's alphas in the cell</b> (the cell verdict) and over every
cell's alphas (the claim's verdict), so a true claim is refuted with probability at most the level. Each
alpha's own verdict is Holm-adjusted on both sides; where the claim is supported but an alpha alone does
not pass Holm, that alpha shows no verdict colour. Not corrected: across different claims (each claim is
its own family), and the choice of claims.</li>
<li><b>Estimates and intervals</b> are on the scale of the test: a difference of means in the metric's
units (accuracy in percentage points) with the {ci} t interval of the contrast (paired t, or Welch);
for ratio claims the ratio of means with Fieller's {ci} interval (unbounded when the baseline's mean is
not distinguishable from 0); for trends the slope with its {ci} t interval. These have their nominal
coverage from 3 seeds on, for normal seed-to-seed variation. A one-sided test at level 0.05 matches a
two-sided 90% interval, so a supported non-inferiority claim's {ci} interval may still cross its margin.</li>{boot}
<li><b>Effect sizes</b>: d<sub>z</sub> (mean of the per-seed differences over their sd) when paired,
Hedges' g (pooled sd, bias-corrected) when not, the ratio for ratio claims, the seeds' slopes' d<sub>z</sub>
for trends and the within-seed Pearson r for associations.</li>
<li><b>Verdicts.</b> supported / refuted as above; <b>inconclusive</b>: neither, with the seeds to support
(every alpha must pass: the largest of the alphas' numbers) and to refute (one alpha suffices: the smallest;
at Holm's first step, level / number of alphas), each from the one-sided power of its t test (the claim's
power, 0.8 by default) <i>if the observed effect and seed-to-seed spread are the truth</i>; <b>not tested</b>:
the cell lacks the claim's alphas or the evaluation that writes its metric.</li>
<li>Figures and the results table: intervals against alpha are Student-t {ci} intervals of the mean over
seeds, per cell.</li>
</ul>"""


def render_page(*, title: str, subtitle: str, results: pd.DataFrame, claims: list[ClaimResult],
                figure_paths: list[tuple[Path, str, bool]], level: float, n_boot: int, notices: list[str],
                sections: list[tuple[str, str, list[tuple[Path, str, bool]]]] = (), interval: str = "t",
                confirmation: str = "", plan: str = "") -> str:
    """The report as one HTML string: claims, figures, optional sections (title, HTML intro,
    figures: robustness and representations when evaluated), results tables, methods."""
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    notice = "".join(f"<p class='notice'>{_e(n)}</p>" for n in notices)
    figs = "".join(_figure(p, caption, wide) for p, caption, wide in figure_paths)
    figs = f"<div class='figs'>{figs}</div>" if figs else ""
    extra = "".join(
        f"<h2>{_e(name)}</h2>\n<p>{intro}</p>\n<div class='figs'>"
        + "".join(_figure(p, caption, wide) for p, caption, wide in paths) + "</div>"
        for name, intro, paths in sections)
    methods = _methods(level, n_boot, interval)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style></head>
<body><main>
<h1>{_e(title)}</h1>
<p class="lead">{subtitle}</p>
<p class="meta">alpha &lt; 0 discourages class selectivity, alpha &gt; 0 encourages it, alpha = 0 is the baseline.
Generated {stamp} by selectivity {_e(__version__)}.</p>
{notice}
{f"<h2>Findings, confirmed on fresh seeds</h2>{confirmation}" if confirmation else ""}
<h2>{"Claims on the exploratory seeds" if confirmation else "Claims"}</h2>
{_claims_section(claims, level)}
{plan}
<h2>Figures</h2>
{figs or "<p>No completed run: nothing to plot.</p>"}
{extra}
<h2>Results</h2>
{_summary_table(results, level)}
{_runs_table(results)}
<h2>Methods</h2>
{methods}
</main></body></html>
"""


# --------------------------------------------------------------------------- the report


def _describe(results: pd.DataFrame) -> tuple[str, str]:
    def names(column):
        return ", ".join(sorted(results[column].dropna().astype(str).unique())) if column in results.columns else ""

    model, dataset = names("model"), names("dataset")
    title = "Class selectivity sweep" + (f": {model}" if model else "") + (f" on {dataset}" if dataset else "")
    done = results[results["status"] == "completed"]
    seeds = done.groupby("alpha")["seed"].nunique()
    if not len(seeds):
        seed_text = "0"
    else:
        seed_text = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    alpha_runs, lambda_runs = split_knobs(results)
    alphas = ", ".join(f"{a:g}" for a in sorted(alpha_runs["alpha"].unique()))
    lambdas = "" if lambda_runs is None else ", ".join(
        f"{v:g}" for v in sorted(pd.to_numeric(lambda_runs["lambda"]).unique()) if v != 0)
    subtitle = (f"{len(results)} runs ({len(done)} completed) at alpha = {_e(alphas)}"
                + (f" and MonoLoss lambda = {_e(lambdas)}" if lambdas else "")
                + f"; {seed_text} completed seed(s) per condition.")
    return title, subtitle


def _figures(root: Path, results: pd.DataFrame, title: str, level: float,
             monoloss_runs: int = 0) -> tuple[list[tuple[Path, str, bool]], list[str]]:
    """Write the PNGs beside the page; returns (path, caption, full width?) and notices."""
    done = results[results["status"] == "completed"]
    if done.dropna(subset=[c for c in ("test_acc", "mean_si") if c in done.columns]).empty:
        return [], ["No completed run with test accuracy and selectivity: figures and claims need at least one."]
    ci = f"{int(level * 100)}%"
    out: list[tuple[Path, str, bool]] = []
    notices = []
    out.append((figures.plot_accuracy_vs_selectivity(results, root / "accuracy_vs_selectivity.png", title=title,
                                                     zoom=True),
                "Test accuracy against mean class selectivity, one point per run, coloured by alpha (baseline "
                "grey). Right: the runs within 5 points of the best accuracy."
                + (f" The {monoloss_runs} MonoLoss runs (lambda ≠ 0) are not drawn here: their knob is not alpha; "
                   "they have their own figures against lambda below." if monoloss_runs else ""), True))
    cells = cell_columns(results)
    out.append((figures.plot_metric_vs_alpha(results, "test_acc", root / "accuracy_vs_alpha.png", percent=True,
                                             ylabel="test accuracy (%)", title="test accuracy against alpha",
                                             level=level, by=cells),
                f"Large dots: means over seeds with {ci} t intervals; small dots: single seeds; grey band: the "
                "baseline's interval. One panel per cell (model, dataset, ...) when the sweep has several.", False))
    out.append((figures.plot_metric_vs_alpha(results, "mean_si", root / "selectivity_vs_alpha.png",
                                             ylabel="mean class selectivity (test set)",
                                             title="mean selectivity against alpha", level=level, by=cells),
                "Mean class selectivity (over units, then layers) against alpha, as on the left: the manipulation "
                "check.", False))
    if any(c.startswith("si/") for c in results.columns):
        out.append((figures.plot_layer_selectivity(results, root / "selectivity_by_layer.png",
                                                   title="selectivity of each layer, by depth"),
                    "Mean SI of each layer from input to output, one line per alpha (mean over seeds).", False))
    units = load_units(root, results)
    if not units.empty:
        out.append((figures.plot_si_distribution(units, root / "si_distribution.png",
                                                 title="selectivity across units"),
                    "SI of single units (all layers and seeds pooled) per alpha, from each run's si_per_unit.csv: "
                    "violins, quartile bars and medians.", units["alpha"].nunique() > 9))
    else:
        notices.append("No si_per_unit.csv in the run directories: no distribution of SI across units.")
    curves = load_curves(root, results)
    if not curves.empty:
        out.append((figures.plot_training_curves(curves, root / "training_curves.png",
                                                 title="training curves (mean over seeds)"),
                    "Per epoch, from each run's metrics.jsonl: train loss (cross-entropy), test accuracy at the "
                    "evaluated epochs and the selectivity of the training minibatches; one line per alpha.", True))
    else:
        notices.append("No metrics.jsonl in the run directories: no training curves.")
    return out, notices


def split_knobs(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(the runs with lambda 0: SI runs and plain training; the runs with alpha 0: MonoLoss runs and
    plain training, or None when the sweep has no MonoLoss run)."""
    lam = pd.to_numeric(results["lambda"], errors="coerce").fillna(0.0) if "lambda" in results else None
    if lam is None or not (lam != 0).any():
        return results, None
    alpha = pd.to_numeric(results["alpha"], errors="coerce").fillna(0.0)
    return results[lam == 0], results[alpha == 0]


def _lambda_figures(root: Path, runs: pd.DataFrame, level: float) -> list[tuple[Path, str, bool]]:
    """The MonoLoss knob's figures: accuracy, MonoScore and SI against lambda (plain training at 0)."""
    ci = f"{int(level * 100)}%"
    cells = cell_columns(runs, exempt=("regularizer.lambda", "regularizer.kind"))
    out = [(figures.plot_metric_vs_alpha(runs, "test_acc", root / "accuracy_vs_lambda.png", percent=True,
                                         ylabel="test accuracy (%)", title="test accuracy against lambda (MonoLoss)",
                                         level=level, by=cells, knob="lambda"),
            f"MonoLoss runs (alpha = 0) and plain training (lambda = 0): means over seeds with {ci} t intervals, "
            "single seeds as small dots.", False)]
    for metric, label in (("mean_monoscore", "mean MonoScore (label embeddings, test set)"),
                          ("mean_si", "mean class selectivity (test set)")):
        if metric in runs and runs[metric].notna().any():
            out.append((figures.plot_metric_vs_alpha(runs, metric, root / f"{metric.removeprefix('mean_')}_vs_lambda.png",
                                                     ylabel=label, title=f"{label.split(' (')[0]} against lambda",
                                                     level=level, by=cells, knob="lambda"),
                        f"{label[0].upper() + label[1:]} against lambda: does rewarding monosemantic units move it?",
                        False))
    return out


def _evaluation_sections(root: Path, results: pd.DataFrame) -> list[tuple[str, str, list[tuple[Path, str, bool]]]]:
    """The Robustness and Representations sections, each only when its data exists."""
    out = []
    robust = load_robustness(root, results)
    if not robust.empty:
        paths = []
        if (robust["kind"] == "corruption").any():
            paths.append((figures.plot_corruption_accuracy(robust, root / "corruption_accuracy.png"),
                          "Accuracy under the common corruptions (Hendrycks &amp; Dietterich), mean over the "
                          "corruptions evaluated and then over seeds, at each severity (clean at 0); one line per "
                          "alpha.", False))
        if (robust["kind"] == "attack").any():
            paths.append((figures.plot_adversarial_accuracy(robust, root / "adversarial_accuracy.png"),
                          "Accuracy under L-inf attacks against epsilon (a sample counts only if its clean image "
                          "is also right, so epsilon 0 is the clean accuracy); mean over seeds, one line per "
                          "alpha.", False))
        if paths:
            n = ", ".join(str(int(v)) for v in sorted(robust["n"].dropna().unique())) if "n" in robust else "?"
            out.append(("Robustness", "From each run's <code>robustness.csv</code> (<code>selectivity robustness"
                        f"</code>), on {_e(n)} test images per run. Is lower selectivity more robust to average-case "
                        "perturbations (corruptions) and less robust to worst-case ones (attacks)?", paths))
    out += masking_sections(_run_dirs(root, results))
    dims, sims = load_analysis(root, results)
    paths = []
    if not dims.empty:
        paths.append((figures.plot_dimensionality_by_layer(dims, root / "dimensionality_by_layer.png"),
                      "Dimensionality of each layer's representation of the same test images: clean, corrupted "
                      "(gaussian_noise, severity 3) and adversarial (PGD, 4/255); PCs explaining 95% of the "
                      "variance (top) and participation ratio (bottom), mean over seeds, one line per alpha.", True))
    if not sims.empty:
        paths.append((figures.plot_similarity_to_baseline(sims, root / "similarity_to_baseline.png"),
                      "Similarity of each layer to the same layer of the alpha = 0 network of the same seed "
                      "(PWCCA, left; unbiased linear CKA, right) against alpha, mean over seeds.", True))
    if paths:
        out.append(("Representations", "From each run's <code>analysis.json</code> (<code>selectivity analyze"
                    "</code>).", paths))
    agreement = _load_run_csvs(root, results, "measure_agreement.csv", {"layer", "measure_a", "measure_b", "spearman"})
    if not agreement.empty:
        agreement["run"] = list(zip(agreement["alpha"], agreement["seed"]))
        figure = figures.plot_measure_agreement(agreement, root / "measure_agreement.png")
        out.append(("Selectivity measures", "From each run's <code>measure_agreement.csv</code> (<code>selectivity "
                    "measure RUN --measures all</code>): do the measures call the same units selective? Gale et "
                    "al. (2020) found that the class selectivity index and precision disagree with signal-detection "
                    "measures (AUROC, informedness).", [(figure, "Spearman rank correlation between measures "
                                                                 "across the units of a layer, mean over layers "
                                                                 "and runs.", False)]))
    over = load_over_training(root, results)
    if not over.empty:
        figure = figures.plot_selectivity_over_training(over, root / "selectivity_over_training.png")
        out.append(("Selectivity over training", "From each run's <code>si_over_training.csv</code> (training with "
                    "<code>record.enabled=true</code>): mean SI of each stage's units on a fixed class-balanced "
                    "subset of the test images, from initialization (epoch 0) on; one line per condition (alpha, "
                    "or the per-epoch alpha schedule), mean and 95% t interval over seeds.",
                    [(figure, "Does selectivity appear early and recede, and what does the regularizer change?",
                      True)]))
    return out


def build_report(sweep_dir: str | Path, claims_files: list[str | Path] = (), *, default_claims: bool = True,
                 level: float = 0.95, n_boot: int = 10_000, seed: int = 0, interval: str = "t",
                 confirm: str | Path | None = None, dunnett: bool = False) -> ReportOutputs:
    """Write ``DIR/report.html`` and its figures for the sweep in ``sweep_dir``.

    claims_files: claims YAML files added to the default claims (``default_claims=False``
    leaves those out). level: confidence level of intervals; interval: 't' (t, Welch and Fieller
    intervals) or 'bootstrap' (percentile, only with 20 seeds or more per group); n_boot, seed:
    the bootstrap's. Also writes ``DIR/claims.csv``, one row per (claim, cell, alpha).
    Raises :class:`ReportError` (a ValueError) for a missing or empty sweep directory and
    :class:`ClaimsError` for a claims file that breaks the schema.

    The page plans a confirmation of the findings on fresh seeds (:func:`plan_confirmation`). With
    ``confirm`` (the confirmatory sweep of the same grid on disjoint seeds), each claim's finding is
    re-tested on those seeds alone and claims.csv gains the confirmatory columns; two sweeps that are
    not one grid, or share a seed, are a :class:`ReportError` naming the difference. ``dunnett``: many-to-one
    simultaneous intervals for the claims over several conditions.
    """
    root = Path(sweep_dir)
    results = load_sweep(root)
    claims = load_claims(*claims_files, defaults=default_claims)
    confirming = load_sweep(Path(confirm)) if confirm is not None else None
    title, subtitle = _describe(results)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices of diverged runs
        # The alpha figures show the SI runs (lambda 0); the MonoLoss runs get figures against lambda.
        alpha_runs, lambda_runs = split_knobs(results)
        figure_paths, notices = _figures(root, alpha_runs, title, level,
                                         0 if lambda_runs is None else int((pd.to_numeric(lambda_runs["lambda"]) != 0).sum()))
        if figure_paths and lambda_runs is not None:
            figure_paths += _lambda_figures(root, lambda_runs, level)
        sections = _evaluation_sections(root, alpha_runs) if figure_paths else []
        sections += population_sections(root, alpha_runs, lambda_runs, level) if figure_paths else []
    verdicts = evaluate_claims(results, claims, level=level, n_boot=n_boot, seed=seed, interval=interval,
                               dunnett=dunnett)
    confirmations = None
    if confirming is not None:  # checked before anything is written: one grid, fresh seeds
        confirmations = confirm_claims(results, confirming, claims, level=level, explored=verdicts, dunnett=dunnett)
    plan = plan_confirmation(root, results, verdicts, level)
    table = root / CLAIMS_CSV
    frame = (claims_table(verdicts, level) if confirmations is None
             else confirmation_table(confirmations, level, plan))
    atomic_write(table, lambda tmp: frame.to_csv(tmp, index=False))
    page = root / REPORT_HTML
    confirmation = "" if confirmations is None else confirmation_section(confirmations, str(root), str(confirm),
                                                                          _estimate)
    text = render_page(title=title, subtitle=subtitle, results=results, claims=verdicts, figure_paths=figure_paths,
                       level=level, n_boot=n_boot, notices=notices, sections=sections, interval=interval,
                       confirmation=confirmation, plan=plan_section(plan))
    write_text(page, text)  # a full or read-only disk: a RunError naming the page, the old page kept
    every = figure_paths + [f for _, _, paths in sections for f in paths]
    return ReportOutputs(page=page, figures={p.stem: p for p, _, _ in every}, claims=verdicts, table=table,
                         plan=plan, confirmations=confirmations)
