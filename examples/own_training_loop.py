"""The selectivity regularizer and meter inside your own training loop.

Trains a small ResNet on the bundled CIFAR-10 demo subset for two epochs with alpha = -1
(alpha < 0 discourages class selectivity), then measures every unit on the test split.
Runs on a CPU in about a minute:  python examples/own_training_loop.py
"""

import torch
import torch.nn.functional as F

import selectivity as sel
from selectivity.data import Augment, DeviceLoader, load_split
from selectivity.models import create_model

train, test = load_split("demo", "train"), load_split("demo", "test")
model = create_model("resnet_demo", num_classes=10, mean=train.mean, std=train.std)
loader = DeviceLoader(train, 64, augment=Augment(crop_padding=4, flip=True))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

reg = sel.SelectivityRegularizer(model, alpha=-1.0, num_classes=10, steps_per_epoch=len(loader),
                                 schedule=sel.LinearWarmup(epochs=1))
for epoch in range(2):
    for x, y in loader:
        loss = F.cross_entropy(model(x), y) + reg.loss(y)  # reg.loss(y) = -alpha * batch selectivity
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    print(f"epoch {epoch}: loss {loss.item():.3f}, batch selectivity {reg.last_selectivity.item():.3f}")
reg.close()

model.eval()
with sel.SelectivityMeter(model, num_classes=10) as meter:
    for x, y in DeviceLoader(test, 500, shuffle=False):
        meter.update(x, y)
result = meter.compute()
print({layer: round(si, 3) for layer, si in result.per_layer.items()}, "network:", round(result.mean, 3))
print(result.to_frame().sort_values("si", ascending=False).head())
