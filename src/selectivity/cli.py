"""`selectivity`: one command with sub-commands, a thin layer over the library.

Each sub-command parses its arguments, builds a validated config and calls one library
function. User mistakes end with a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
import warnings
from pathlib import Path

from .analysis.finite import NonFiniteOutputError
from .commands.evaluate import EvaluationError
from .core import LayerSelectionError
from .data import DatasetError
from .report.claims import ReportError
from .runs import RunError, RunPaths, resolve_device
from .sweep.grid import SweepError
from .config import ConfigError

USER_ERRORS = (ConfigError, RunError, DatasetError, LayerSelectionError, ReportError, SweepError, EvaluationError,
               NonFiniteOutputError, FileNotFoundError)


def _train(args) -> int:
    from .runs import run_name
    from .sweep.grid import run_id
    from .config import load_config
    from .train.distributed import teardown
    from .train.trainer import resolve_source, train

    overrides = list(args.set or [])
    if args.alpha is not None:
        overrides.append(f"regularizer.alpha={args.alpha}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.data is not None:
        overrides.append(f"data.source={args.data}")
    config = resolve_source(load_config(args.config, overrides))
    # The default directory carries the config's id: another config never lands in (and is
    # refused by) an existing run, such as the demo's, and the same command resumes its own.
    name = run_name(config.regularizer.alpha, config.train.seed, config.regularizer.schedule,
                    config.regularizer.lambda_)
    default = Path("runs") / config.name / f"{name}-{run_id(config)}"
    out = Path(args.out) if args.out else default
    start = time.perf_counter()
    try:
        final = train(config, out, progress=not args.no_progress)
    finally:
        teardown()  # under torchrun: leave the process group
    if os.environ.get("RANK", "0") == "0":  # one report, from rank 0
        if args.json:
            print(json.dumps(final, indent=2))
        else:
            print("\n".join(train_summary(final, out, time.perf_counter() - start)))
    return 0


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"


def train_summary(final: dict, out: Path, wall: float) -> list[str]:
    """What `selectivity train` prints: the run, its knob, its numbers and where final.json lies."""
    if final.get("kind") == "monoloss":
        knob = f"MonoLoss lambda {final['lambda']:g} (lambda > 0 rewards monosemantic units)"
    else:
        knob = f"alpha {final['alpha']:g} (alpha < 0 discourages selectivity, > 0 encourages it)"
    if final.get("schedule"):
        knob += f", schedule {final['schedule']!r}"
    lines = [f"run directory: {out.resolve()}",
             f"{final['model']} on {final['dataset']}, seed {final['seed']}: {knob}"]
    if final.get("status") != "completed":
        lines.append(f"status {final.get('status')} after {final['epochs']} epochs: no final evaluation")
    else:
        live = final.get("mean_si_live")
        lines += [f"{final['epochs']} epochs; test accuracy {final['test_acc']:.4f} on {final['n_test']} images",
                  f"mean SI {final['mean_si']:.4f}, dead units {100 * final['dead_fraction']:.1f}%, mean SI of the "
                  f"live units {'- (none alive)' if live is None else f'{live:.4f}'}"]
        if final.get("mean_monoscore") is not None:
            lines.append(f"mean MonoScore (label embeddings) {final['mean_monoscore']:.4f}")
    lines += [f"training time {_duration(final['train_seconds'])} on {final['device']}; this command's wall time "
              f"{_duration(wall)}",
              f"every number and setting: {RunPaths(out).final.resolve()}"]
    return lines


def _measure(args) -> int:
    if args.measures is not None and not args.measures.replace(",", " ").split():  # given, naming nothing
        raise ConfigError("--measures names nothing: give at least one (e.g. --measures si,informedness), "
                          "or leave --measures out")
    if args.population:
        return _measure_population(args)
    if args.rotations is not None or args.limit is not None:
        raise ConfigError("--rotations and --limit apply to --population")
    if args.model is not None:
        return _measure_any(args)
    from .commands.measure import measure_run

    if args.run_dir is None:
        raise ConfigError("measure needs a run directory, or --model with --weights and --data")
    if args.tokens is not None and not args.measures:
        raise ConfigError("--tokens reads a run's units on other tokens for --measures (unit_measures-tokens-<rule>.csv)"
                          "; give --measures too")
    model_flags = ("weights", "set", "layers", "out", "mean", "std", "size", "device", "positive_part",
                   "min_active", *TEXT_FLAGS)
    flag = {"positive_part": "raw-tokens"}
    model_only = [f"--{flag.get(k, k.replace('_', '-'))}" for k in model_flags if getattr(args, k) is not None]
    if model_only:
        raise ConfigError(f"{', '.join(model_only)} only apply with --model; a run is measured with its own model")
    if args.split == "val":
        raise ConfigError("--split val is for --model image folders; a run is measured on train or test")
    args.split = args.split or "test"
    if args.sample is not None and not args.measures:
        raise ConfigError("--sample applies to --measures (AUROC, informedness and MI); SI is always exact")
    if args.measures:  # a bad name is refused before any work
        from .commands.measure_any import _check_measures

        _check_measures(args.measures, args.sample)
    if not (Path(args.run_dir) / "config.yaml").is_file() and Path(args.run_dir).is_dir():
        return _measure_sweep(args)
    summary = measure_run(args.run_dir, data=args.data, split=args.split, progress=not args.no_progress)
    _print_si_summary(summary, f"   accuracy {summary['accuracy']:.4f}")
    # Say what was measured: training's final.json may have used a subset (data.test_limit).
    print(f"measured on {summary['images']} {summary.get('samples', 'images')} of the {summary['split']} split of "
          f"{summary['data']}")
    print(f"per-unit SI: {summary['units_csv']}")
    if args.measures:
        from .commands.measure_any import measure_run_units

        units = measure_run_units(args.run_dir, data=args.data, split=args.split, measures=args.measures,
                                  progress=not args.no_progress, sample_size=args.sample, tokens=args.tokens)
        _print_sampling(units["sampling"])
        for name, path in units["files"].items():
            print(f"{name}: {path}")
    return 0


def _measure_sweep(args) -> int:
    from .commands.measure_any import measure_sweep

    if not args.measures:
        raise ConfigError(f"{args.run_dir} is a sweep: measure it with --measures (each run's SI is already in its "
                          "final.json and si_per_unit.csv)")
    if args.data is not None or args.split != "test":
        raise ConfigError("a sweep is measured on each run's own test split: --data and --split apply to one run")
    done = measure_sweep(args.run_dir, measures=args.measures, sample_size=args.sample, force=args.force,
                         progress=not args.no_progress, tokens=args.tokens)
    print(f"measured {len(done['measured'])} run(s), kept {len(done['kept'])} already measured (--force redoes them)")
    if done["results"] is not None:
        print(f"results: {done['results']}")
    return 0


def _print_si_summary(summary: dict, after_network: str = "") -> None:
    """Mean SI per layer and of the network, dead units and the live units' mean SI."""
    width = max([24, *(len(layer) for layer in summary["per_layer"])])
    print(f"{'layer':<{width}} {'mean SI':>8}")
    for layer, value in summary["per_layer"].items():
        print(f"{layer:<{width}} {value:>8.4f}")
    print(f"{'network':<{width}} {summary['mean_si']:>8.4f}{after_network}")
    live = summary["mean_si_live"]
    print(f"dead units {100 * summary['dead_fraction']:.1f}%, mean SI of the live units "
          f"{'- (none alive)' if live is None else f'{live:.4f}'}")
    if summary.get("mean_monoscore") is not None:  # label embeddings: the MonoLoss knob's measure
        print(f"mean MonoScore (label embeddings) {summary['mean_monoscore']:.4f}")


def _print_sampling(sampling: dict | None) -> None:
    if sampling is None:
        return
    print(f"AUROC, informedness and MI from a uniform sample of {sampling['kept']} of {sampling['images']} images; "
          "standard error (root mean square over live units; informedness and MI also lean upward in a sample):")
    for layer, errors in sampling["standard_error"].items():
        print(f"  {layer:<22} " + ", ".join(f"{m} {v:.4f}" for m, v in errors.items()))


def _image_side(text: str) -> int:
    """--size: pixels per side, 1 to 4096 (a 100000-pixel side would ask for 120 GB per batch)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"expected an image side in pixels from 1 to 4096, got {text!r}")
    return value


def _crop_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


#: measure --model options for text only (an hf: text model on labelled texts).
TEXT_FLAGS = ("text_column", "label_column", "max_length", "truncation", "batch_size")


def _measure_any(args) -> int:
    from .commands.measure_any import measure_any, model_kwargs
    from .models.hf import is_hf_name

    layers = [p.strip() for p in args.layers.split(",") if p.strip()] if args.layers else None
    if is_hf_name(args.model):
        return _measure_hf(args, layers)
    text_only = [f"--{k.replace('_', '-')}" for k in TEXT_FLAGS if getattr(args, k) is not None]
    if text_only:
        raise ConfigError(f"{', '.join(text_only)} apply to text models (--model hf:DIR) only")
    if args.run_dir is not None or not args.weights or not args.data:
        raise ConfigError("measure --model takes --weights FILE.safetensors and --data DIR, and no run directory")
    summary = measure_any(args.model, args.weights, args.data, args.out, model_kwargs(args.set), split=args.split,
                          device=args.device, layers=layers, measures=args.measures or "all", mean=args.mean,
                          std=args.std, size=args.size, crop_fraction=args.crop_fraction, sample_size=args.sample,
                          progress=not args.no_progress, tokens=args.tokens, positive_part=args.positive_part,
                          min_active=args.min_active)
    _print_si_summary(summary)
    print(f"{summary['images']} images, {summary['classes']} classes, layers {', '.join(summary['layers'])}")
    rare = summary["rarely_active_units"]
    print(f"exemplars.html ranks the units active on at least {summary['min_active']} images (--min-active)"
          + (f"; {rare} rarely active unit{'s are' if rare > 1 else ' is'} listed apart" if rare else ""))
    _print_sampling(summary["sampling"])
    for name, path in summary["files"].items():
        print(f"{name}: {path}")
    return 0


def _measure_population(args) -> int:
    from .commands.measure_any import build_measured_model, model_kwargs
    from .commands.population import DEFAULT_ROTATIONS, population_model, summary_line, validate_population
    from .data.imageset import open_image_set

    if args.model is None or args.run_dir is not None or not args.weights or not args.data:
        raise ConfigError("measure --population takes --model, --weights FILE.safetensors and --data DIR (a run's "
                          "population.csv comes from `selectivity analyze RUN --population`)")
    if args.measures or args.sample is not None:
        raise ConfigError("--measures and --sample do not apply to --population")
    rotations = DEFAULT_ROTATIONS if args.rotations is None else args.rotations
    validate_population(rotations, args.limit)
    device = resolve_device(args.device or "auto", "--device")  # before any work
    layers = [p.strip() for p in args.layers.split(",") if p.strip()] if args.layers else None
    images = open_image_set(args.data, "train")  # the classes the model is built for
    classes = len(images.classes)
    images.close()
    model = build_measured_model(args.model, args.weights, classes, model_kwargs(args.set))
    out = Path(args.out) if args.out else Path("runs") / "measure" / Path(args.weights).stem
    path = population_model(model, args.data, out, split=args.split, layers=layers, mean=args.mean, std=args.std,
                            size=args.size, crop_fraction=args.crop_fraction, device=device, rotations=rotations,
                            limit=args.limit, tokens=args.tokens, positive_part=args.positive_part)
    print(summary_line(path))
    print(f"population: {path}")
    return 0


def _measure_hf(args, layers) -> int:
    """measure --model hf:DIR: its own weights (or --weights), on labelled texts or images."""
    from .commands.measure_any import measure_model
    from .commands.measure_text import measure_text
    from .data.imageset import open_image_set
    from .models.hf import HFModelError, load_hf
    from .runs.weights import load_safetensors_weights

    if args.run_dir is not None or not args.data:
        raise ConfigError("measure --model hf:DIR takes --data (labelled texts or images), and no run directory")
    if args.set:
        raise ConfigError("--set does not apply to hf: models: their settings are the folder's config.json")
    device = resolve_device(args.device or "auto", "--device")  # before any work
    try:
        loaded = load_hf(args.model)
    except HFModelError as err:
        raise ConfigError(str(err)) from None
    if args.weights:  # weights of one's own for the folder's architecture, loaded strictly
        load_safetensors_weights(loaded.model, args.weights)
    out = args.out or str(Path("runs") / "measure" / loaded.folder.name)
    common = dict(layers=layers, measures=args.measures or "all", device=device, sample_size=args.sample,
                  progress=not args.no_progress, tokens=args.tokens, positive_part=args.positive_part)
    if loaded.kind == "text":
        image_only = [f"--{k.replace('_', '-')}" for k in ("mean", "std", "size") if getattr(args, k) is not None]
        if image_only:
            raise ConfigError(f"{', '.join(image_only)} apply to images; {args.model} is a text model")
        summary = measure_text(loaded, args.data, out, split=args.split, text_column=args.text_column or "text",
                               label_column=args.label_column or "label", max_length=args.max_length,
                               truncation=args.truncation or "none", batch_size=args.batch_size or 32, **common)
        _print_si_summary(summary)
        t = summary["tokenization"]
        print(f"{summary['texts']} texts, {summary['classes']} classes ({', '.join(summary['class_names'])}), "
              f"{len(summary['layers'])} layers ({summary['units']} units) of {summary['architecture']}")
        print(f"tokenized by the model's tokenizer: at most {t['max_length']} tokens (the model's maximum "
              f"{t['model_max_length']}), truncation {t['truncation']} ({t['truncated']} texts cut)")
        rule = {"mean": "the mean over its real tokens", "cls": "its first token", "last": "its last real token",
                "patches": "the mean over its real tokens after the first"}[summary["tokens"]]
        print(f"a unit's value for a text: {rule}, of each token's "
              f"{'positive part' if summary['positive_part'] else 'raw value'}")
    else:
        text_only = [f"--{k.replace('_', '-')}" for k in TEXT_FLAGS if getattr(args, k) is not None]
        if text_only:
            raise ConfigError(f"{', '.join(text_only)} apply to text models; {args.model} is an image model")
        images = open_image_set(args.data, args.split)
        summary = measure_model(loaded.model, images, out, size=args.size, crop_fraction=args.crop_fraction,
                                **common)
        _print_si_summary(summary)
        print(f"{summary['images']} images, {summary['classes']} classes, layers {', '.join(summary['layers'])}")
    _print_sampling(summary["sampling"])
    for name, path in summary["files"].items():
        print(f"{name}: {path}")
    return 0


def _demo(args) -> int:
    from .commands.demo import DEMO_ALPHAS, run_demo

    alphas = args.alphas or DEMO_ALPHAS
    outputs = run_demo(args.out, alphas=alphas, seed=args.seed, overrides=args.set, progress=not args.no_progress,
                       jobs=args.jobs)
    import pandas as pd

    table = pd.read_csv(outputs["results"])
    # a dead unit has SI 0: mean SI is shown with the dead fraction and the live units' mean SI beside it
    shown = [c for c in ("alpha", "seed", "test_acc", "mean_si", "dead_fraction", "mean_si_live") if c in table]
    print(table[shown].to_string(index=False, float_format="%.4f"))
    for name, path in outputs.items():
        print(f"{name}: {Path(path).resolve()}")
    return 0


def _compare(args) -> int:
    from .commands.compare import compare_report, compare_weights

    comparison = compare_weights(args.a, args.b)
    print("\n".join(compare_report(comparison, args.rtol)))
    return 1 if comparison.beyond(args.rtol) else 0


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _alpha_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    return values


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the usage is one --help away), exit 2 as before."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="selectivity", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one network with a chosen alpha")
    p.add_argument("config", help="a preset name (see configs/) or a YAML file")
    p.add_argument("--alpha", type=float, help="alpha < 0 discourages selectivity, > 0 encourages it")
    p.add_argument("--seed", type=int)
    p.add_argument("--data", help="dataset path (CIFAR-10 pickles, Tiny ImageNet, ImageFolder) or 'demo'")
    p.add_argument("--out", help="run directory (default runs/<config>/alpha<A>_seed<S>)")
    p.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                   help="override config keys, e.g. --set train.epochs=6 train.batch_size=64")
    p.add_argument("--json", action="store_true", help="print final.json (every number and setting) instead of "
                   "the summary, for scripts")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)

    p = sub.add_parser("measure", help="class selectivity of every unit of a trained run, or of any model")
    p.add_argument("run_dir", nargs="?", help="a run directory, a sweep directory (with --measures: every run), "
                   "or none with --model, --weights, --data")
    p.add_argument("--data", help="measure on another dataset than the run's; with --model: images (folder or zip), "
                   "or with a text model (hf:DIR) labelled texts (.csv, .jsonl or a datasets folder)")
    p.add_argument("--split", choices=["train", "test", "val"],
                   help="run: train or test (default); --model: default val, else test, else train")
    p.add_argument("--measures", help="'all' or comma-separated measures: also write unit_measures.csv and "
                   "measure_agreement.csv")
    p.add_argument("--sample", type=int, metavar="N",
                   help="rank a seeded uniform sample of N images for AUROC, informedness and MI, with its standard "
                   "error (default: every image, exact; memory images x units x 4 bytes)")
    p.add_argument("--force", action="store_true", help="a sweep: measure runs that have unit_measures.csv again")
    p.add_argument("--model", help="a registered model name, timm:NAME, torchvision:NAME, hf:DIR (a Hugging Face "
                   "folder, or hf:ORG/NAME in the local cache; offline) or package.module:factory (measure any model)")
    p.add_argument("--weights", help="with --model: the weights, a .safetensors file (hf: models have their own)")
    p.add_argument("--set", action="append", metavar="model.kwargs.KEY=VALUE", help="with --model: a model argument")
    p.add_argument("--layers", help="with --model: comma-separated module names or globs (default: the model's)")
    p.add_argument("--out", help="with --model: output folder (default runs/measure/<weights name>)")
    p.add_argument("--mean", type=_alpha_list, help="with --model: per-channel mean to normalize [0, 1] images")
    p.add_argument("--std", type=_alpha_list, help="with --model: per-channel std to normalize [0, 1] images")
    p.add_argument("--size", type=_image_side, help="with --model: input side in pixels, 1 to 4096 (default: the "
                   "model's input_size)")
    p.add_argument("--crop-fraction", type=_crop_fraction, default=1.0,
                   help="resize to size/fraction, then centre-crop (a fraction in (0, 1])")
    p.add_argument("--device", help="with --model: cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--tokens", choices=["mean", "cls", "patches", "last"],
                   help="with --model, a transformer's units: the mean over all (real) tokens (default), the class "
                   "token, the patch tokens, or the last real token (decoder language models)")
    p.add_argument("--raw-tokens", dest="positive_part", action="store_const", const=False,
                   help="with --model: keep each token's raw value (default: its positive part max(x, 0))")
    p.add_argument("--min-active", type=int, metavar="N",
                   help="with --model: exemplars.html ranks only units that respond (above 0) to at least N images "
                        "and lists the others apart (default: a tenth of an average class, at least the 8 "
                        "exemplar slots)")
    p.add_argument("--population", action="store_true",
                   help="with --model: instead of the unit measures, population.csv: per layer, a linear probe fitted "
                   "on the train split of --data and scored on its val/test split, and the axis gap (units' one-class "
                   "preference minus random directions')")
    p.add_argument("--rotations", type=int, metavar="K", help="with --population: random bases per layer (default 10)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="with --population: at most N images of each split (the first N of a seeded permutation)")


    p.add_argument("--text-column", help="with a text model: the column of the texts (default text)")
    p.add_argument("--label-column", help="with a text model: the column of the labels (default label)")
    p.add_argument("--max-length", type=int, help="with a text model: the most tokens a text may have (default: the "
                   "model's maximum)")
    p.add_argument("--truncation", choices=["none", "right", "left"],
                   help="with a text model, a longer text: none (an error, the default), right (keep its first "
                   "tokens) or left (keep its last)")
    p.add_argument("--batch-size", type=int, help="with a text model: texts per forward pass (default 32)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_measure)

    p = sub.add_parser("demo", help="the alpha knob on the bundled CIFAR-10 subset (CPU, minutes)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--alphas", type=_alpha_list, help="comma-separated, e.g. -5,-1,0,1,5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, help="runs at once, one thread each (default: one per core, at most 2)")
    p.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", help="override config keys")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_demo)

    p = sub.add_parser("compare", help="largest relative difference between two runs' (or sweeps') weights",
                       description="Compare every parameter and buffer of two runs' weights.safetensors (or of "
                                   "two sweeps' runs, paired by name) and print the largest relative difference "
                                   "||a - b|| / max(||a||, ||b||). Exit 0 when within --rtol, 1 when not, 2 on "
                                   "bad input. With train.dtype=float64, stacked and local runs, or 2 processes "
                                   "and 1, agree to 1e-9 or better.")
    p.add_argument("a", help="a run directory, a sweep directory or a .safetensors file")
    p.add_argument("b", help="the same kind of thing as A")
    p.add_argument("--rtol", type=_tolerance, default=1e-9, help="largest relative difference allowed (default 1e-9)")
    p.set_defaults(func=_compare)

    from .commands.evaluate_cli import add_analyze_parser, add_robustness_parser
    from .report.cli import add_report_parser
    from .sweep.cli import add_sweep_parser

    add_sweep_parser(sub)
    add_robustness_parser(sub)
    add_analyze_parser(sub)
    add_report_parser(sub)
    return parser


# Options whose values start with a minus: 1 takes one number, None a comma or space separated list.
_NUMBER_OPTIONS = {"--alpha": 1, "--seed": 1, "--alphas": None, "--seeds": None, "--schedules": None, "--lambdas": None}
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*(e[-+]?\d+)?|\.\d+(e[-+]?\d+)?|nan|inf|infinity)$", re.IGNORECASE)


def _join_numbers(argv: list[str]) -> list[str]:
    """``--alphas -1,0,1`` -> ``--alphas=-1,0,1``: argparse takes "-1,0,1" for an option.

    A single number (``--alpha -1e-3``) is taken when it reads as one; a list (``-1,0,1``,
    ``-1 0 1``) runs to the next ``--option`` and becomes one ``--alphas=-1,0,1``, so that
    its parser judges every item. Anything else is left for argparse.
    """
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        if token not in _NUMBER_OPTIONS:
            out.append(token)
            i += 1
            continue
        single = _NUMBER_OPTIONS[token] == 1
        values = []
        while i + 1 + len(values) < len(argv):
            nxt = argv[i + 1 + len(values)]
            if (single and (values or not _NUMBER.match(nxt))) or (not single and nxt.startswith("--")):
                break
            values.append(nxt.strip(","))
        if any(v.startswith("-") for v in values):
            out.append(f"{token}={','.join(values)}")
            i += 1 + len(values)
        else:
            out.append(token)
            i += 1
    return out


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """``warning: <message>``: what a command warns of, without the Python source line that warned."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    argv = _join_numbers(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    # formatwarning, not showwarning: warnings that a caller records (pytest.warns) stay recorded
    format_before, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"selectivity {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a read-only or full disk met outside the run files' own writers
        where = f"{err.filename}: " if err.filename else ""
        print(f"selectivity {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"selectivity {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = format_before


if __name__ == "__main__":
    sys.exit(main())
