"""Two CPU processes of Lightning's strategy="ddp" (gloo), started as a user starts them:
``python tests/integrations/lightning_ddp.py OUT`` (Lightning launches the second process).

Per process batches of 8 (global 16) of the tiny float64 net with SelectivityCallback(alpha=-2,
sync="global"); rank 0 writes the weights to OUT/weights.safetensors and the logs to OUT.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lightning.pytorch as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from selectivity.integrations.lightning import SelectivityCallback  # noqa: E402
from tests.integrations.helpers import LAYERS, NUM_CLASSES, tiny_data, tiny_net  # noqa: E402
from tests.integrations.lightning_modules import Classifier, loader  # noqa: E402


def main(out: Path) -> None:
    torch.set_num_threads(1)
    x, y = tiny_data(48)
    vx, vy = tiny_data(20, seed=7)
    module = Classifier(tiny_net())
    callback = SelectivityCallback(-2.0, NUM_CLASSES, [f"net.{n}" for n in LAYERS], schedule=None)
    trainer = L.Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, callbacks=[callback],
                        logger=CSVLogger(out), log_every_n_steps=1, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, loader(x, y, 8), loader(vx, vy, 5))
    if trainer.global_rank == 0:
        save_file({k: v.contiguous() for k, v in module.net.state_dict().items()}, out / "weights.safetensors")
        print(f"world size {trainer.world_size}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
