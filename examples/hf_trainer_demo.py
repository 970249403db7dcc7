"""The selectivity knob in a Hugging Face transformers.Trainer: a small ViT built from its config
(random init: nothing is downloaded) trained on the bundled CIFAR-10 demo images.

The script is a plain Trainer script; the two lines marked ``# selectivity`` add the knob
(alpha < 0 discourages class selectivity, alpha > 0 encourages it, alpha = 0 is plain
training), its logs and a selectivity meter over every evaluation. The ViT's units are the
hidden neurons of each block's MLP after its GELU (the default layers of any ViT). Runs on a
CPU in a few minutes (2 epochs):

    python examples/hf_trainer_demo.py --alpha -1

Outputs go to runs/hf_trainer_demo/; the last line printed holds the final evaluation metrics.
"""

import argparse

import torch
from transformers import Trainer, TrainingArguments, ViTConfig, ViTForImageClassification

from selectivity.data import limit_test, load_split, take_per_class
from selectivity.integrations.hf import add_selectivity  # selectivity


class Images(torch.utils.data.Dataset):
    """A split of uint8 images as the Trainer's examples: normalized pixel_values and labels."""

    def __init__(self, split):
        mean, std = (torch.tensor(v).view(3, 1, 1) for v in (split.mean, split.std))
        self.pixels = (split.images.float() / 255 - mean) / std
        self.labels = split.labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"pixel_values": self.pixels[i], "labels": self.labels[i]}


def accuracy(prediction):
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=-1.0, help="the knob (< 0 discourages selectivity)")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: the epochs)")
    parser.add_argument("--train-per-class", type=int, default=None, help="training images per class (default all)")
    parser.add_argument("--test-limit", type=int, default=None, help="test images (default all 1000)")
    parser.add_argument("--out", default="runs/hf_trainer_demo")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    train, test = load_split("demo", "train", progress=False), load_split("demo", "test", progress=False)
    if args.train_per_class:
        train = take_per_class(train, args.train_per_class)
    config = ViTConfig(image_size=32, patch_size=4, num_channels=3, hidden_size=96, num_hidden_layers=4,
                       num_attention_heads=4, intermediate_size=192, num_labels=10)
    model = ViTForImageClassification(config)
    training = TrainingArguments(
        output_dir=args.out, num_train_epochs=args.epochs, max_steps=args.max_steps, per_device_train_batch_size=64,
        per_device_eval_batch_size=250, learning_rate=1e-3, warmup_steps=20, eval_strategy="epoch",
        logging_steps=10, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
    )
    trainer = Trainer(model=model, args=training, train_dataset=Images(train),
                      eval_dataset=Images(limit_test(test, args.test_limit)), compute_metrics=accuracy)
    add_selectivity(trainer, alpha=args.alpha, num_classes=10, schedule=None)  # selectivity
    trainer.train()
    metrics = trainer.evaluate()
    print(f"alpha={args.alpha:g} after {trainer.state.global_step} steps: "
          f"{ {k: round(v, 4) for k, v in metrics.items() if 'selectivity' in k or k == 'eval_accuracy'} }")


if __name__ == "__main__":
    main()
