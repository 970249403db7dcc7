"""`selectivity robustness` and `selectivity analyze`: evaluations of trained runs.

Wired into the main CLI by ``add_robustness_parser(subparsers)`` and
``add_analyze_parser(subparsers)``; user mistakes raise
:class:`~selectivity.commands.evaluate.EvaluationError` (a ValueError: one line, exit 2).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

__all__ = ["add_analyze_parser", "add_robustness_parser"]


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _split_all(values) -> list[str]:
    """``--x a,b --x c`` or ``--x a b``: one flat list."""
    out: list[str] = []
    for v in values or []:
        out += _names(v)
    return out


def _given(values, flag: str, example: str) -> list[str] | None:
    """An option's comma-separated names; None when the option is not given (the defaults apply).
    Given but naming nothing (``--eps ''``) is an error, never "the defaults" nor "none"."""
    if values is None:
        return None
    names = _split_all(values)
    if not names:
        from .evaluate import EvaluationError

        raise EvaluationError(f"{flag} names nothing: give at least one (e.g. {flag} {example}), or leave {flag} "
                              "out for the defaults")
    return names


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of images (2 or more), got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected a number of images (2 or more), got {text!r}")
    return value


#: The files each command writes in a run directory (attributes of RunPaths), printed when written.
ROBUSTNESS_FILES = ("robustness", "attack_outcomes", "masking")
ANALYSIS_FILES = ("analysis", "analysis_dimensionality", "analysis_ablation")


def _stamps(runs, files) -> dict:
    """(path -> modification time or None) of ``files`` in every run: what a command wrote shows as changed."""
    from ..runs import RunPaths

    stamps = {}
    for run in runs:
        for name in files:
            path = getattr(RunPaths(run), name).resolve()
            stamps[path] = path.stat().st_mtime_ns if path.is_file() else None
    return stamps


def _print_written(run_dir, files, before: dict) -> None:
    """Each file of ``files`` the command wrote in ``run_dir``, as a full path; or that nothing changed."""
    from ..runs import RunPaths

    paths = [getattr(RunPaths(run_dir), name).resolve() for name in files]
    written = [p for p in paths if p.is_file() and before.get(p) != p.stat().st_mtime_ns]
    for path in written:
        print(f"  wrote {path}")
    if not written:
        print(f"  nothing new to compute: {paths[0]} has every row asked for (--force recomputes them)")


def _corruption_line(table) -> str | None:
    """What the corruption rows say: one corruption at one severity by name, else their mean and extent."""
    rows = table[table["kind"] == "corruption"]
    if rows.empty:
        return None
    done = rows[rows["accuracy"].notna()]
    skipped = sorted(set(rows["name"]) - set(done["name"]))
    names, severities = list(dict.fromkeys(done["name"])), sorted(set(done["level"].astype(int)))
    if len(done) == 1:
        line = f"{names[0]}, severity {severities[0]}: {done['accuracy'].iloc[0]:.3f}"
    elif len(done):
        which = ", ".join(names) if len(names) <= 3 else f"{len(names)} corruptions"
        levels = ", ".join(map(str, severities))
        line = (f"corruptions: mean {done['accuracy'].mean():.3f} over {which} x severit"
                f"{'y' if len(severities) == 1 else 'ies'} {levels} ({len(done)} cells)")
    else:
        line = "corruptions: none evaluated"
    return line + (f"; not evaluated: {', '.join(skipped)}" if skipped else "")


def _robustness(args: argparse.Namespace) -> int:
    from .evaluate import (EvaluationError, eps_label, find_runs, parse_eps, robustness, unavailable_corruptions,
                           validate_budgets, validate_robustness)

    severities = _given(args.severities, "--severities", "1,3,5")
    for k, s in enumerate(severities or []):
        try:
            severities[k] = int(s)
        except ValueError:
            raise EvaluationError(f"severity {s!r} is not an integer in 1..5") from None
    eps = _given(args.eps, "--eps", "2/255")
    eps = None if eps is None else [parse_eps(e) for e in eps]
    attacks = _given(args.attacks, "--attacks", "pgd")
    corruptions = _given(args.corruptions, "--corruptions", "contrast")
    square_queries, apgd_steps = validate_budgets(args.square_queries, args.apgd_steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # announced here, before the work, in one line each
        corruptions, *_ = validate_robustness(corruptions, severities=severities, attacks=attacks, eps=eps,
                                              limit=args.limit)
        before = _stamps(find_runs(args.dir).runs, ROBUSTNESS_FILES)
        for name, reason in unavailable_corruptions(corruptions).items():
            print(f"selectivity robustness: note: skipping {name} ({reason}); the other evaluations run, and "
                  f"robustness.csv records {name} as not evaluated", file=sys.stderr)
        outcome = robustness(args.dir, corruptions=corruptions, severities=severities,
                             attacks=attacks, eps=eps, preset=args.preset, limit=args.limit,
                             progress=not args.no_progress, force=args.force, square_queries=square_queries,
                             apgd_steps=apgd_steps)
    import pandas as pd

    for path in outcome["runs"]:
        table = pd.read_csv(path)
        n = _image_count(table, args.limit)
        table = table[table["n"] == n]  # this call's images: other image sets are kept apart, not shown here
        clean = table[table["kind"] == "clean"]["accuracy"]
        adv = ", ".join(f"{r.name} {eps_label(r.level)}: {r.accuracy:.3f}"
                        for r in table[table["kind"] == "attack"].itertuples(index=False) if r.level > 0)
        print(f"{path.parent.name}: clean {clean.iloc[0]:.3f}" if len(clean) else f"{path.parent.name}:")
        corruption = _corruption_line(table)
        if corruption:
            print(f"  {corruption}")
        if adv:
            print(f"  attacks: {adv}")
        _print_attack_details(path.parent, n)
        _print_written(path.parent, ROBUSTNESS_FILES, before)
    for run in outcome["skipped"]:
        print(f"{run.name}: skipped (not completed)")
    if outcome["results"]:
        print(f"results: {Path(outcome['results']).resolve()} (summary columns added)")
    return 0


def _image_count(table, limit: int | None) -> int:
    """The size of the image set a call with ``limit`` evaluated: ``limit``, or all the run's images
    (the largest set) when there is no limit or it exceeds them."""
    largest = int(table["n"].max())
    return int(limit) if limit is not None and int(limit) < largest else largest


def _print_attack_details(run_dir, n: int) -> None:
    """The attacks' cost per image and epsilon, and the gradient-masking checks that flagged, on ``n`` images."""
    import pandas as pd

    from ..runs import RunPaths
    from .evaluate import attack_costs, eps_label

    by_attack: dict[str, list[str]] = {}
    for attack, eps, seconds, calls in attack_costs(run_dir, n):
        if eps > 0:
            by_attack.setdefault(attack, []).append(f"{eps_label(eps)} {1000 * seconds:.3g} ms ({calls:.0f} calls)")
    for attack, parts in by_attack.items():
        print(f"  cost per image, {attack}: {', '.join(parts)}")
    path = RunPaths(run_dir).masking
    if not path.is_file():
        return
    table = pd.read_csv(path)
    table = table[table["n"] == n]
    flagged = table[table["flagged"].astype(str) == "True"]
    checked = table[table["flagged"].notna()]
    unchecked = sorted(set(table.loc[table["flagged"].isna(), "check"]))
    if len(flagged):
        for r in flagged.itertuples(index=False):
            print(f"  GRADIENT MASKING? {r.check} at {eps_label(float(r.eps))}: {r.detail}")
    else:
        print(f"  gradient masking: no flag ({len(checked)} checks"
              + (f"; not checked: {', '.join(unchecked)}" if unchecked else "") + ")")


def _print_analysis(path) -> None:
    """The headline numbers of one run's analysis.json: dimensionality and ablation per layer,
    similarity to the baseline, gradient variability."""
    import json
    import math

    data = json.loads(Path(path).read_text())
    dims, ablation, layers = data["dimensionality"], data["ablation"], data["layers"]
    width = max([20] + [len(layer) for layer in layers])
    print(f"{Path(path).parent.name}: {data['n']} images")
    print("  dimensionality (pc95: principal components for 95% of the variance; PR: participation ratio; the change "
          f"of pc95 on {data['perturbations']['corrupted']} and on {data['perturbations']['adversarial']} images):")
    print(f"    {'layer':<{width}} {'pc95':>5} {'PR':>7} {'corrupted':>10} {'adversarial':>12}")
    for layer in layers:
        clean = dims["clean"][layer]
        print(f"    {layer:<{width}} {clean['pc95']:>5} {clean['participation_ratio']:>7.2f} "
              f"{dims['corrupted'][layer]['delta_pc95']:>+10} {dims['adversarial'][layer]['delta_pc95']:>+12}")
    curves = [ablation[layer] for layer in layers]
    if curves and 0.5 in curves[0]["fractions"]:
        half = curves[0]["fractions"].index(0.5)
        print(f"  ablation (accuracy with half of a layer's units silenced, the most selective first or at random; "
              f"{curves[0]['clean']:.3f} with none):")
        print(f"    {'layer':<{width}} {'by SI':>7} {'random (+- sd)':>16}")
        for layer, a in zip(layers, curves):
            print(f"    {layer:<{width}} {a['selective'][half]:>7.3f} {a['random_mean'][half]:>8.3f} +- "
                  f"{a['random_std'][half]:.3f}")
    similarity = data.get("similarity")
    if similarity:
        means = {m: [v for v in similarity[m].values() if v is not None] for m in ("pwcca", "cka")}
        print(f"  similarity to {similarity['baseline']} (mean over layers): "
              + ", ".join(f"{m.upper()} {sum(v) / len(v):.3f}" if v else f"{m.upper()} -" for m, v in means.items()))
    cv = data["summary"].get("grad_cv_across_samples")
    if cv is not None and math.isfinite(cv):
        print(f"  gradient variability (CV of input-gradient norms across images, mean over layers): {cv:.3f}")


def _analyze(args: argparse.Namespace) -> int:
    from .evaluate import analyze, find_runs, validate_robustness

    if args.population:
        from .population import population_cli

        return population_cli(args)
    if args.rotations is not None or args.force:
        from .evaluate import EvaluationError

        raise EvaluationError("--rotations and --force apply to --population")
    validate_robustness(limit=args.limit)
    before = _stamps(find_runs(args.dir).runs, ANALYSIS_FILES)
    outcome = analyze(args.dir, limit=args.limit, progress=not args.no_progress)
    for path in outcome["runs"]:
        _print_analysis(path)
        _print_written(Path(path).parent, ANALYSIS_FILES, before)
    for run in outcome["skipped"]:
        print(f"{run.name}: skipped (not completed)")
    if outcome["results"]:
        print(f"results: {Path(outcome['results']).resolve()} (summary columns added)")
    return 0


_LIMIT_HELP = ("evaluate on a fixed random subset of N test images (the same subset for every run, "
               "seeded), for speed; default: the run's whole test split")


def add_robustness_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``robustness`` sub-command to an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser(
        "robustness", help="accuracy under corruptions and adversarial attacks (robustness.csv per run)",
        description="Write robustness.csv (kind, name, level, accuracy, n) in a run directory, or in every "
                    "completed run of a sweep directory, and add corruption_acc and adv_acc/<attack>/<eps> "
                    "(adv_acc/worst/<eps>: an image counts only if every attack run failed on it) to the sweep's "
                    "results.csv/.parquet. Beside robustness.csv: attack_outcomes.safetensors (per image, each "
                    "attack's outcome, settings and cost, so that a later call with other attacks extends the "
                    "worst case) and masking.csv (gradient-masking checks per epsilon: blackbox, epsilon, "
                    "apgd-vs-pgd, gradient, each with what it saw). Corruptions and attacks are seeded "
                    "(deterministic). Resumable: rows already in robustness.csv (same number of images, same "
                    "attack budget) are kept, only missing ones are computed; --force recomputes them.")
    p.add_argument("dir", help="a run directory or a sweep directory")
    p.add_argument("--corruptions", nargs="+", metavar="NAME",
                   help="comma-separated corruption names (default: the 15 benchmark corruptions)")
    p.add_argument("--severities", nargs="+", metavar="S", help="comma-separated, in 1..5 (default 1,2,3,4,5)")
    p.add_argument("--attacks", nargs="+", metavar="NAME",
                   help="comma-separated, any of fgsm, pgd, apgd-ce, apgd-dlr (APGD-T on the targeted DLR loss) "
                        "and square (black-box) (default fgsm,pgd); robustness.csv adds the worst case over every "
                        "attack run, and masking.csv the gradient-masking checks")
    p.add_argument("--square-queries", metavar="N",
                   help="the Square attack's budget of model calls per image (default 5000, AutoAttack's)")
    p.add_argument("--apgd-steps", metavar="N",
                   help="iterations of each APGD run (default 100, AutoAttack's; apgd-dlr runs 9 target classes)")
    p.add_argument("--eps", nargs="+", metavar="EPS",
                   help="L-inf radii in [0, 1] pixel units, e.g. 1/255,2/255 or 0.0157 (default 1/255,2/255,4/255,8/255)")
    p.add_argument("--limit", type=_limit, metavar="N", help=_LIMIT_HELP)
    p.add_argument("--preset", help="corruption constants: cifar10-c or tinyimagenet-c (default: from the image "
                                    "size, 32 px -> cifar10-c, 64 px -> tinyimagenet-c)")
    p.add_argument("--force", action="store_true", help="recompute rows already in robustness.csv")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_robustness)
    return p


def add_analyze_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``analyze`` sub-command to an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser(
        "analyze", help="dimensionality, similarity to baseline, ablation, gradient variability (analysis.json)",
        description="Write analysis.json, analysis_dimensionality.csv and analysis_ablation.csv in a run directory "
                    "or every completed run of a sweep directory: per-layer dimensionality (pc95, participation "
                    "ratio) on clean, corrupted (gaussian_noise, severity 3) and adversarial (PGD 4/255) inputs; "
                    "PWCCA and unbiased linear CKA to the alpha = 0 run of the same seed (sweeps only); ablation "
                    "curves (SI order vs random); input-unit gradient variability. Adds scalar summary columns "
                    "(pc95/<layer> of the early layers, pc95_early, pwcca/<layer>, ...) to the sweep's results. "
                    "Recomputes every time. With --population, only population.csv instead: per regularized layer, "
                    "the test accuracy of a linear probe fitted on the responses to the run's train images, and the "
                    "axis gap (units' one-class preference minus random directions') on its test images; the "
                    "sweep's results gain probe_acc/<layer>, axis_gap/<layer> and mean_axis_gap.")
    p.add_argument("dir", help="a run directory or a sweep directory")
    p.add_argument("--limit", type=_limit, metavar="N", help=_LIMIT_HELP + "; with --population: at most N images of "
                   "each split, train and test (the first N of a seeded permutation of each)")
    p.add_argument("--population", action="store_true",
                   help="write population.csv (linear decodability and axis gap per layer) and nothing else; a run "
                        "that has one with the same settings is kept")
    p.add_argument("--rotations", type=int, metavar="K",
                   help="with --population: random orthonormal bases per layer for the axis gap (default 10)")
    p.add_argument("--force", action="store_true", help="with --population: recompute population.csv")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_analyze)
    return p
