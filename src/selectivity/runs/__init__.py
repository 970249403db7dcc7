"""The run directory: the one owner of every file a run holds, and of reading its summary.

Used by training (which writes it), sweeps (which collect rows from it), the evaluation
commands (which add robustness and analysis files) and the report. Nothing here trains or
evaluates: :mod:`.paths` names the files, :mod:`.files` writes and locks them safely,
:mod:`.tensors` stores checkpoints and weights with a checksum, :mod:`.summary` reads a run
back as one results-table row, :mod:`.build` turns a config into its model, and
:func:`open_run` (:mod:`.open`) is the one public way to open a trained run: its config, its
model with verified weights on a chosen device, and the test images it was evaluated on.
"""

from .build import build_model, resolve_device
from .files import RunBusy, RunError, atomic_write, exclusive, read_json, read_text, remove_orphans, write_text
from .open import OpenRun, load_run_model, open_run
from .paths import RunPaths, run_name
from .summary import ROBUSTNESS_COLUMNS, SEVERITIES, completed, eps_label, read_robustness, run_row, run_summary
from .tensors import load_checkpoint, load_tensors, save_checkpoint, save_tensors, tensor_digest

__all__ = [
    "OpenRun",
    "ROBUSTNESS_COLUMNS",
    "SEVERITIES",
    "RunBusy",
    "RunError",
    "RunPaths",
    "atomic_write",
    "build_model",
    "completed",
    "eps_label",
    "exclusive",
    "load_checkpoint",
    "load_run_model",
    "load_tensors",
    "read_json",
    "read_robustness",
    "read_text",
    "open_run",
    "remove_orphans",
    "resolve_device",
    "run_name",
    "run_row",
    "run_summary",
    "save_checkpoint",
    "save_tensors",
    "tensor_digest",
    "write_text",
]
