"""Reports on a sweep: figures, claims tested across seeds, and a self-contained HTML page.

    selectivity report DIR [--claims my_claims.yaml]

alpha < 0 discourages class selectivity, alpha > 0 encourages it, alpha = 0 is the baseline.

Names load on first use, so ``selectivity.report.figures`` (used while training) does not
pull in the statistics.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TESTS": "claims",
    "Claim": "claims",
    "ClaimResult": "claims",
    "CellResult": "claims",
    "claims_table": "claims",
    "ClaimsError": "claims",
    "Comparison": "claims",
    "ReportError": "claims",
    "default_claims_path": "claims",
    "evaluate_claims": "claims",
    "load_claims": "claims",
    "parse_claims": "claims",
    "add_report_parser": "cli",
    "ReportOutputs": "html",
    "build_report": "html",
    "load_sweep": "html",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
