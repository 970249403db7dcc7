"""Every file a run directory holds, named in one place.

    RUN_DIR/
      config.yaml              the resolved config (a re-run with another config is refused)
      metrics.jsonl            one line per finished epoch
      checkpoint.safetensors   model, optimizer and history after the last finished epoch
      weights.safetensors      the final weights
      si_per_unit.csv          the final per-unit selectivity (test set)
      final.json               written last: its presence means training is over
      robustness.csv           `selectivity robustness`: accuracy under corruptions and attacks
      attack_outcomes.safetensors  per image: robust under each (attack, eps); the attacks' settings and cost
      masking.csv              per epsilon: the gradient-masking checks and what each saw
      analysis.json            `selectivity analyze` (+ analysis_dimensionality.csv, analysis_ablation.csv)
      unit_measures.csv        `selectivity measure --measures`: every measure of every unit
      measure_agreement.csv    rank correlations between the measures, per layer
      unit_measures-tokens-<rule>.csv, measure_agreement-tokens-<rule>.csv
                               the same with a transformer's units read on other tokens (--tokens cls)
      population.csv           `selectivity analyze --population`: per layer, linear decodability and the axis gap
      si_over_training.csv     per-unit SI recorded during training (when recording is on)
      attempts.jsonl           in a sweep: one line per attempt (host, job id, wall seconds)
      failed.json              in a sweep: written when a run has used up its retries
      tensorboard/             TensorBoard logs, when tensorboard is installed
      .run.lock                held by the one process that trains the run
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunPaths", "run_name"]


def run_name(alpha: float, seed: int, schedule: str | None = None, lam: float = 0.0) -> str:
    """The directory name of a run: ``alpha-1_seed0``, ``alpha+0.5_seed2``; with a per-epoch alpha
    schedule ``alpha-5_sched0x2_-5x6_seed0`` (``"0*2 -5*6"``; cut at 40 characters, marked ``~``);
    a MonoLoss run (lambda != 0) ``lambda+0.1_seed0``."""
    knob = f"lambda{lam:+g}" if lam != 0.0 else f"alpha{alpha:+g}"
    if schedule is None:
        return f"{knob}_seed{seed}"
    label = re.sub(r"[^0-9A-Za-z.+\-_]", "", re.sub(r"\s+", "_", schedule.strip()).replace("*", "x"))
    return f"{knob}_sched{label if len(label) <= 40 else label[:39] + '~'}_seed{seed}"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / "config.yaml")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    checkpoint = property(lambda self: self.root / "checkpoint.safetensors")
    weights = property(lambda self: self.root / "weights.safetensors")
    si_per_unit = property(lambda self: self.root / "si_per_unit.csv")
    final = property(lambda self: self.root / "final.json")
    robustness = property(lambda self: self.root / "robustness.csv")
    attack_outcomes = property(lambda self: self.root / "attack_outcomes.safetensors")
    masking = property(lambda self: self.root / "masking.csv")
    analysis = property(lambda self: self.root / "analysis.json")
    analysis_dimensionality = property(lambda self: self.root / "analysis_dimensionality.csv")
    analysis_ablation = property(lambda self: self.root / "analysis_ablation.csv")
    unit_measures = property(lambda self: self.root / "unit_measures.csv")
    measure_agreement = property(lambda self: self.root / "measure_agreement.csv")

    def unit_measures_read_on(self, tokens: str) -> Path:
        """unit_measures.csv of a transformer's units read on other tokens than training's rule
        (``measure RUN --measures ... --tokens cls``): its results columns end in ``_<tokens>``."""
        return self.root / f"unit_measures-tokens-{tokens}.csv"

    def measure_agreement_read_on(self, tokens: str) -> Path:
        return self.root / f"measure_agreement-tokens-{tokens}.csv"
    population = property(lambda self: self.root / "population.csv")
    si_over_training = property(lambda self: self.root / "si_over_training.csv")
    attempts = property(lambda self: self.root / "attempts.jsonl")
    failed = property(lambda self: self.root / "failed.json")
    tensorboard = property(lambda self: self.root / "tensorboard")
    lock = property(lambda self: self.root / ".run.lock")

    def is_run(self) -> bool:
        return self.config.is_file()

    def written_files(self) -> list[str]:
        """Names of the files written atomically (their temporaries are ``.NAME.XXXX``)."""
        return [p.name for p in (self.config, self.metrics, self.checkpoint, self.weights, self.si_per_unit,
                                 self.final, self.robustness, self.analysis, self.analysis_dimensionality,
                                 self.analysis_ablation, self.unit_measures, self.measure_agreement,
                                 self.si_over_training, self.failed, self.attack_outcomes, self.masking,
                                 self.population)]
