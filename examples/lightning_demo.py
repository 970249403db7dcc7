"""The selectivity knob in PyTorch Lightning: the demo ResNet on the bundled CIFAR-10 demo images.

``DemoClassifier`` is a LightningModule as anyone writes one; the two lines marked
``# selectivity`` add the knob (alpha < 0 discourages class selectivity, alpha > 0 encourages
it, alpha = 0 is plain training), its logs and a selectivity meter over every validation epoch.
Runs on a CPU in about a minute (2 epochs):

    python examples/lightning_demo.py --alpha -1
    python examples/lightning_demo.py --alpha -1 --devices 2     # strategy="ddp": 2 CPU processes

Logs (CSV) go to runs/lightning_demo/; the last line printed holds the final network's validation
accuracy, mean SI and dead-unit fraction.
"""

import argparse
import warnings

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from selectivity.data import load_split, take_per_class
from selectivity.integrations.lightning import SelectivityCallback  # selectivity
from selectivity.models import create_model


class DemoClassifier(L.LightningModule):
    def __init__(self, mean, std, lr: float = 0.05):
        super().__init__()
        self.model = create_model("resnet_demo", num_classes=10, mean=mean, std=std)
        self.lr = lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        flip = torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5
        loss = F.cross_entropy(self.model(torch.where(flip, x.flip(3), x)), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)


def images(split, batch_size: int, shuffle: bool) -> DataLoader:
    return DataLoader(TensorDataset(split.images.float() / 255, split.labels), batch_size=batch_size, shuffle=shuffle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=-1.0, help="the knob (< 0 discourages selectivity)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: the epochs)")
    parser.add_argument("--train-per-class", type=int, default=None, help="training images per class (default all)")
    parser.add_argument("--val-batches", type=int, default=None, help="validation batches of 250 (default all)")
    parser.add_argument("--devices", type=int, default=1, help="CPU processes; 2 or more train with DDP")
    parser.add_argument("--out", default="runs/lightning_demo")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)

    train, test = load_split("demo", "train", progress=False), load_split("demo", "test", progress=False)
    if args.train_per_class:
        train = take_per_class(train, args.train_per_class)
    module = DemoClassifier(train.mean, train.std)
    trainer = L.Trainer(
        max_epochs=args.epochs, max_steps=args.max_steps, accelerator="cpu", devices=args.devices,
        limit_val_batches=args.val_batches, logger=CSVLogger(args.out), default_root_dir=args.out,
        enable_checkpointing=False, log_every_n_steps=10, num_sanity_val_steps=0, enable_model_summary=False,
        callbacks=[SelectivityCallback(alpha=args.alpha, num_classes=10, schedule=None)],  # selectivity
    )
    val = images(test, 250, shuffle=False)
    trainer.fit(module, images(train, 64, shuffle=True), val)
    [metrics] = trainer.validate(module, val, verbose=False)  # the final network, with the meter too
    if trainer.is_global_zero:
        shown = {k: round(v, 4) for k, v in metrics.items() if k in ("val_acc", "selectivity/val_si",
                                                                   "selectivity/val_dead_fraction")}
        print(f"alpha={args.alpha:g} after {trainer.global_step} steps: {shown}")


if __name__ == "__main__":
    main()
