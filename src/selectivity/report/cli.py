"""`selectivity report DIR`: figures, claims with statistics and one HTML page for a sweep.

The CLI module calls :func:`add_report_parser` on its sub-parsers; user mistakes raise
:class:`~selectivity.report.claims.ReportError` (a ValueError), which the CLI turns into a
one-line error.
"""

from __future__ import annotations

import argparse
import math

from .claims import INCONCLUSIVE, NOT_TESTED, ReportError

__all__ = ["add_report_parser", "run_report"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``report`` sub-command to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "report", help="figures, claims tested across seeds and an HTML page for a sweep directory",
        description="Write DIR/report.html (self-contained) and its PNG figures, and test the claims "
                    "(the papers' defaults plus any --claims files) across seeds.")
    p.add_argument("dir", help="sweep directory: results.csv, or run directories with final.json")
    p.add_argument("--claims", action="append", metavar="YAML", default=[],
                   help="a claims file in the form of the default claims.yaml, added to the defaults (repeatable)")
    p.add_argument("--no-default-claims", action="store_true", help="test only the --claims files")
    p.add_argument("--strict", action="store_true",
                   help="exit with an error when a claim cannot be tested on this sweep (the page is still written)")
    p.add_argument("--interval", choices=("t", "bootstrap"), default="t",
                   help="confidence intervals: t (paired t, Welch, Fieller for ratios; default) or bootstrap "
                        "(percentile, used only where every group has 20 seeds or more)")
    p.add_argument("--bootstrap", type=_positive_int, default=10_000, metavar="N",
                   help="bootstrap resamples with --interval bootstrap (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--confirm", metavar="DIR",
                   help="a confirmatory sweep of the same grid on fresh seeds: each claim's exploratory finding is "
                        "tested again on its seeds alone (one-sided, in the direction found), side by side")
    p.add_argument("--dunnett", action="store_true",
                   help="also give many-to-one simultaneous (Dunnett) intervals to claims over several conditions "
                        "compared with one control")
    p.set_defaults(func=run_report)
    return p


def _seeds(n: float) -> str:
    return "?" if math.isnan(n) else "> 1000" if math.isinf(n) else str(int(n))


def _print_confirmations(confirmations) -> None:
    from .claims.confirm import replicated_share

    width = max((len(c.claim.id) for c in confirmations), default=0)
    print(f"{'claim':<{width}}  {'exploratory':<13} {'finding':<26} {'confirmatory':<13} replicated")
    for c in confirmations:
        p = c.confirmatory.p_value
        p_text = "" if math.isnan(p) else f" (p = {p:.3g})"
        print(f"{c.claim.id:<{width}}  {c.exploratory.verdict:<13} {c.finding:<26} "
              f"{c.confirmatory.verdict:<13} {c.status}{p_text}")
    done, findings = replicated_share(confirmations)
    print(f"{done} of {findings} findings replicated on the confirmatory seeds")


def run_report(args) -> int:
    """Build the report for ``args.dir``; print one line per claim and the page's path."""
    from .html import build_report

    outputs = build_report(args.dir, args.claims, default_claims=not args.no_default_claims,
                           n_boot=args.bootstrap, seed=args.seed, interval=args.interval, confirm=args.confirm,
                           dunnett=args.dunnett)
    if outputs.confirmations is not None:
        _print_confirmations(outputs.confirmations)
    width = max((len(r.claim.id) for r in outputs.claims), default=0)
    for result in outputs.claims:
        extra = ""
        if any(cell.blocked for cell in result.cells):  # runs without a value: say which, not seeds
            extra = f"  ({result.reason})"
        elif result.verdict == INCONCLUSIVE and not math.isnan(result.seeds_to_support):
            extra = (f"  (seeds per alpha to support: {_seeds(result.seeds_to_support)}, "
                     f"to refute: {_seeds(result.seeds_to_refute)})")
        elif result.reason:
            extra = f"  ({result.reason})"
        p = "" if math.isnan(result.p_value) else f"p = {result.p_value:.3g}"
        print(f"{result.claim.id:<{width}}  {result.verdict:<12} {p:<12}{extra}")
        if result.claim.failed_text:
            print(f"{'':<{width}}    {result.claim.failed_text}")
        if len(result.cells) > 1:
            for cell in result.cells:
                print(f"{'':<{width}}    {cell.label}: {cell.verdict}")
    for line in outputs.plan.lines():
        print(line)
    for name, path in outputs.figures.items():
        print(f"{name}: {path}")
    print(f"claims table: {outputs.table}")
    print(f"report: {outputs.page}")
    untested = [r.claim.id for r in outputs.claims if r.verdict == NOT_TESTED]
    if args.strict and untested:
        raise ReportError(f"{len(untested)} claim(s) not tested on this sweep: {', '.join(untested)}")
    return 0
