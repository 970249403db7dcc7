"""Claims: the papers' statements written as hypotheses and tested across seeds, per cell.

- :mod:`.schema`: the claims file (fields, parsing, :class:`Claim`);
- :mod:`.evaluate`: testing a claim on a results table, cell by cell;
- :mod:`.results`: what a test gives (:class:`Comparison`, :class:`CellResult`,
  :class:`ClaimResult`) and ``claims.csv``.

The rules and what they guarantee are in docs/claims.md; the schema in ``claims.yaml``.
"""

from ..cells import cell_columns
from .evaluate import BOOTSTRAP_MIN_SEEDS, evaluate_claim, evaluate_claims, metric_resolution
from .results import (CLAIMS_CSV_COLUMNS, INCONCLUSIVE, NOT_TESTED, REFUTED, SUPPORTED, CellResult, ClaimResult,
                      Comparison, claims_table, decide)
from .schema import TESTS, AlphaSelector, Claim, ClaimsError, ReportError, default_claims_path, load_claims, parse_claims

__all__ = [
    "BOOTSTRAP_MIN_SEEDS",
    "CLAIMS_CSV_COLUMNS",
    "INCONCLUSIVE",
    "NOT_TESTED",
    "REFUTED",
    "SUPPORTED",
    "TESTS",
    "AlphaSelector",
    "CellResult",
    "Claim",
    "ClaimResult",
    "ClaimsError",
    "Comparison",
    "ReportError",
    "cell_columns",
    "claims_table",
    "decide",
    "default_claims_path",
    "evaluate_claim",
    "evaluate_claims",
    "load_claims",
    "metric_resolution",
    "parse_claims",
]
