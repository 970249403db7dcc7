"""LightningModules as a user writes them, knowing nothing of selectivity."""

from __future__ import annotations

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .helpers import LR, MOMENTUM


class Classifier(L.LightningModule):
    """CE on (x, y) batches, or on dict batches {"image", "label"} returning {"loss": ...}."""

    def __init__(self, net, dict_batches: bool = False):
        super().__init__()
        self.net = net
        self.dict_batches = dict_batches

    def _split(self, batch):
        return (batch["image"], batch["label"]) if self.dict_batches else batch

    def training_step(self, batch, batch_idx):
        x, y = self._split(batch)
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return {"loss": loss} if self.dict_batches else loss

    def validation_step(self, batch, batch_idx):
        x, y = self._split(batch)
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LR, momentum=MOMENTUM)


class DictImages(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"image": self.x[i], "label": self.y[i]}


def loader(x, y, batch_size: int, dict_batches: bool = False) -> DataLoader:
    data = DictImages(x, y) if dict_batches else TensorDataset(x, y)
    return DataLoader(data, batch_size=batch_size, shuffle=False)


def trainer(tmp_path, callbacks, **kwargs) -> L.Trainer:
    settings = dict(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                    default_root_dir=str(tmp_path))
    return L.Trainer(callbacks=callbacks, **{**settings, **kwargs})
