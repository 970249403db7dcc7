"""`selectivity robustness` and `selectivity analyze`: evaluations of trained runs.

Wired into the main CLI by ``add_robustness_parser(subparsers)`` and
``add_analyze_parser(subparsers)``; user mistakes raise
:class:`~selectivity.commands.evaluate.EvaluationError` (a ValueError: one line, exit 2).
"""

from __future__ import annotations

import argparse
import sys
import warnings

__all__ = ["add_analyze_parser", "add_robustness_parser"]


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _split_all(values) -> list[str]:
    """``--x a,b --x c`` or ``--x a b``: one flat list."""
    out: list[str] = []
    for v in values or []:
        out += _names(v)
    return out


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of images (2 or more), got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected a number of images (2 or more), got {text!r}")
    return value


def _robustness(args: argparse.Namespace) -> int:
    from .evaluate import (EvaluationError, eps_label, parse_eps, robustness, unavailable_corruptions,
                           validate_budgets, validate_robustness)

    severities = None
    if args.severities:
        severities = []
        for s in _split_all(args.severities):
            try:
                severities.append(int(s))
            except ValueError:
                raise EvaluationError(f"severity {s!r} is not an integer in 1..5") from None
    eps = [parse_eps(e) for e in _split_all(args.eps)] if args.eps else None
    attacks = _split_all(args.attacks) or None
    square_queries, apgd_steps = validate_budgets(args.square_queries, args.apgd_steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # announced here, before the work, in one line each
        corruptions, *_ = validate_robustness(_split_all(args.corruptions) or None, attacks=attacks, eps=eps,
                                              limit=args.limit)
        for name, reason in unavailable_corruptions(corruptions).items():
            print(f"selectivity robustness: note: skipping {name} ({reason}); the other evaluations run, and "
                  f"robustness.csv records {name} as not evaluated", file=sys.stderr)
        outcome = robustness(args.dir, corruptions=_split_all(args.corruptions) or None, severities=severities,
                             attacks=attacks, eps=eps, preset=args.preset, limit=args.limit,
                             progress=not args.no_progress, force=args.force, square_queries=square_queries,
                             apgd_steps=apgd_steps)
    import pandas as pd

    for path in outcome["runs"]:
        table = pd.read_csv(path)
        corr = table[table["kind"] == "corruption"]["accuracy"]
        clean = table[table["kind"] == "clean"]["accuracy"]
        adv = ", ".join(f"{r.name} {eps_label(r.level)}: {r.accuracy:.3f}"
                        for r in table[table["kind"] == "attack"].itertuples(index=False) if r.level > 0)
        print(f"{path.parent.name}: clean {clean.iloc[0]:.3f}" if len(clean) else f"{path.parent.name}:", end="")
        print(f"  corruption mean {corr.mean():.3f}" if len(corr) else "", end="")
        print(f"  {adv}" if adv else "")
        _print_attack_details(path.parent)
    for run in outcome["skipped"]:
        print(f"{run.name}: skipped (not completed)")
    if outcome["results"]:
        print(f"results: {outcome['results']} (summary columns added)")
    return 0


def _print_attack_details(run_dir) -> None:
    """The attacks' cost per image and epsilon, and the gradient-masking checks that flagged."""
    import pandas as pd

    from ..runs import RunPaths
    from .evaluate import attack_costs, eps_label

    by_attack: dict[str, list[str]] = {}
    for attack, eps, seconds, calls in attack_costs(run_dir):
        if eps > 0:
            by_attack.setdefault(attack, []).append(f"{eps_label(eps)} {1000 * seconds:.3g} ms ({calls:.0f} calls)")
    for attack, parts in by_attack.items():
        print(f"  cost per image, {attack}: {', '.join(parts)}")
    path = RunPaths(run_dir).masking
    if not path.is_file():
        return
    table = pd.read_csv(path)
    flagged = table[table["flagged"].astype(str) == "True"]
    checked = table[table["flagged"].notna()]
    unchecked = sorted(set(table.loc[table["flagged"].isna(), "check"]))
    if len(flagged):
        for r in flagged.itertuples(index=False):
            print(f"  GRADIENT MASKING? {r.check} at {eps_label(float(r.eps))}: {r.detail}")
    else:
        print(f"  gradient masking: no flag ({len(checked)} checks"
              + (f"; not checked: {', '.join(unchecked)}" if unchecked else "") + ")")


def _analyze(args: argparse.Namespace) -> int:
    from .evaluate import analyze

    if args.population:
        from .population import population_cli

        return population_cli(args)
    if args.rotations is not None or args.force:
        from .evaluate import EvaluationError

        raise EvaluationError("--rotations and --force apply to --population")
    outcome = analyze(args.dir, limit=args.limit, progress=not args.no_progress)
    for path in outcome["runs"]:
        print(f"analysis: {path}")
    for run in outcome["skipped"]:
        print(f"{run.name}: skipped (not completed)")
    if outcome["results"]:
        print(f"results: {outcome['results']} (summary columns added)")
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
