"""Cost of the Lightning callback and the Hugging Face entry point, as ratios measured in one run.

The demo ResNet (resnet_demo, 3 blocks regularized) on the bundled CIFAR-10 demo images, batch
128, on the CPU, alpha = -1 from the first step. Three variants of one training step in each
trainer, interleaved round by round (the order rotating) so that drifts of the machine hit all
of them alike:

  plain      the trainer's step without the knob
  by hand    the knob written into the user's own code: SelectivityRegularizer and
             ``loss + reg.loss(y)`` in the LightningModule's training_step, or in an overridden
             Trainer.compute_loss (the README's plain-loop way, inside each trainer)
  knob       SelectivityCallback / add_selectivity, with their per-step work (labels found and
             checked, the batch score and per-layer scores logged)

A step is timed from the trainer's batch-start hook to its batch-end hook (Lightning:
on_train_batch_start of the first callback to on_train_batch_end of the last, optimizer step
included; Trainer: on_step_begin to on_step_end, one optimizer step), after a few warm-up
steps. Prints the median step of each variant and the ratios knob / plain (what the knob costs
in all) and knob / by hand (what the integration adds to the knob itself).
Usage: python benchmarks/integration_overhead.py [--rounds 5] [--steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from selectivity import SelectivityRegularizer
from selectivity.data import load_split, take_per_class
from selectivity.models import create_model

WARMUP = 3  # steps of each fit that are not timed


def demo_model(train):
    torch.manual_seed(0)
    return create_model("resnet_demo", num_classes=10, mean=train.mean, std=train.std)


# -- Lightning -------------------------------------------------------------------------------

def lightning_variants(train, batch: int):
    import lightning.pytorch as L

    from selectivity.integrations.lightning import SelectivityCallback

    class Plain(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = demo_model(train)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.model(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    class ByHand(Plain):
        def on_fit_start(self):
            if not hasattr(self, "reg"):
                self.reg = SelectivityRegularizer(self, -1.0, 10, schedule=None)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.model(x), y) + self.reg.loss(y)

    class Timer(L.Callback):
        def __init__(self, times, start: bool):
            self.times, self.start = times, start

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if self.start:
                self.times.append(-time.perf_counter())

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if not self.start:
                self.times[-1] += time.perf_counter()

    data = DataLoader(TensorDataset(train.images.float() / 255, train.labels), batch_size=batch, shuffle=False)
    callback = SelectivityCallback(alpha=-1.0, num_classes=10, schedule=None)
    modules = {"plain": (Plain(), []), "by hand": (ByHand(), []), "knob": (Plain(), [callback])}

    def run(name: str, steps: int) -> list[float]:
        module, extra = modules[name]
        times: list[float] = []
        trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[Timer(times, True), *extra, Timer(times, False)])
        trainer.fit(module, data)
        return times[WARMUP:]

    return run


# -- Hugging Face Trainer --------------------------------------------------------------------

class Examples(Dataset):
    def __init__(self, train):
        self.x, self.y = train.images.float() / 255, train.labels

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def hf_variants(train, batch: int, out: str):
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    from selectivity.integrations.hf import add_selectivity

    class ForTrainer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = demo_model(train)

        def forward(self, pixel_values, labels=None):
            logits = self.model(pixel_values)
            return {"loss": F.cross_entropy(logits, labels), "logits": logits}

    class ByHand(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"]
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            loss = loss + self.reg.loss(labels)
            return (loss, outputs) if return_outputs else loss

    class Timer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.times.append(-time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.times[-1] += time.perf_counter()

    examples = Examples(train)
    models = {"plain": ForTrainer(), "by hand": ForTrainer(), "knob": ForTrainer()}
    by_hand_reg = SelectivityRegularizer(models["by hand"], -1.0, 10, schedule=None)

    def run(name: str, steps: int) -> list[float]:
        model = models[name]
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=steps,
                                 train_sampling_strategy="sequential", learning_rate=0.05, optim="sgd",
                                 lr_scheduler_type="constant", logging_steps=10_000, save_strategy="no",
                                 report_to="none", use_cpu=True, disable_tqdm=True)
        timer = Timer()
        trainer = (ByHand if name == "by hand" else Trainer)(model=model, args=args, train_dataset=examples,
                                                            callbacks=[timer])
        trainer.remove_callback(PrinterCallback)  # no printed log lines
        knob = None
        if name == "by hand":
            trainer.reg = by_hand_reg
        elif name == "knob":
            knob = add_selectivity(trainer, alpha=-1.0, num_classes=10, schedule=None)
        trainer.train()
        if knob is not None:
            knob.close()
        return timer.times[WARMUP:]

    return run


def measure(run, rounds: int, steps: int) -> dict[str, float]:
    names = ["plain", "by hand", "knob"]
    times: dict[str, list[float]] = {n: [] for n in names}
    for name in names:  # a first fit of each, outside the timings
        run(name, WARMUP + 1)
    for r in range(rounds):
        for name in names[r % 3:] + names[:r % 3]:  # rotate the order
            times[name] += run(name, WARMUP + steps)
    return {n: statistics.median(t) for n, t in times.items()}


def report(title: str, medians: dict[str, float]) -> None:
    print(f"\n{title}")
    print(f"  {'variant':<8} {'median step (ms)':>17} {'ratio to plain':>15}")
    for name, m in medians.items():
        print(f"  {name:<8} {1e3 * m:>17.1f} {m / medians['plain']:>15.3f}")
    print(f"  knob / plain   = {medians['knob'] / medians['plain']:.3f}")
    print(f"  knob / by hand = {medians['knob'] / medians['by hand']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant and round")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="/tmp/selectivity-integration-overhead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import logging

    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)  # no "GPU available" lines at every fit
    train = load_split("demo", "train", progress=False)
    train = take_per_class(train, -(-args.batch * (WARMUP + args.steps) // 10))  # enough for one fit
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), resnet_demo (3 blocks), batch "
          f"{args.batch}, alpha -1, {args.rounds} interleaved rounds of {args.steps} timed steps per variant")
    report("PyTorch Lightning (SelectivityCallback)", measure(lightning_variants(train, args.batch),
                                                              args.rounds, args.steps))
    report("Hugging Face Trainer (add_selectivity)", measure(hf_variants(train, args.batch, args.out),
                                                             args.rounds, args.steps))


if __name__ == "__main__":
    main()
