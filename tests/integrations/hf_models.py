"""A Hugging Face Trainer set-up as a user writes it, knowing nothing of selectivity."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainingArguments, ViTConfig, ViTForImageClassification

from .helpers import LR, MOMENTUM, NUM_CLASSES


class ForTrainer(nn.Module):
    """A plain network in the Trainer's calling convention: keyword inputs, a dict with loss and logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, pixel_values, labels=None):
        logits = self.net(pixel_values)
        return {"loss": None if labels is None else F.cross_entropy(logits, labels), "logits": logits}


def tiny_vit(seed: int = 0) -> ViTForImageClassification:
    """A two-block ViT for 6x6 images, random init, float64 (no download)."""
    torch.manual_seed(seed)
    config = ViTConfig(image_size=6, patch_size=3, num_channels=3, hidden_size=16, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=24, num_labels=NUM_CLASSES)
    return ViTForImageClassification(config).double()


def examples(x, y) -> list[dict]:
    return [{"pixel_values": x[i], "labels": y[i]} for i in range(len(y))]


def trainer(tmp_path, model, train, eval_data=None, batch_size=8, accumulate=1, epochs=2, **kwargs) -> Trainer:
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=batch_size,
                             per_device_eval_batch_size=6, num_train_epochs=epochs,
                             gradient_accumulation_steps=accumulate, train_sampling_strategy="sequential",
                             max_grad_norm=0.0, logging_strategy="steps", logging_steps=1, save_strategy="no",
                             report_to="none", use_cpu=True, disable_tqdm=True, **kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    constant = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    return Trainer(model=model, args=args, train_dataset=train, eval_dataset=eval_data, optimizers=(opt, constant))
