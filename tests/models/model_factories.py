"""Models of one's own for the registry tests, loaded as ``"model_factories:<name>"``."""

from torch import nn


def tiny_net(num_classes, width=4):
    """Flatten a (N, 3, 4, 4) batch, one hidden layer of ``width`` units."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 4 * 4, width), nn.ReLU(), nn.Linear(width, num_classes)
    )


def without_num_classes():
    return nn.Linear(2, 2)


def not_a_module(num_classes):
    return f"{num_classes} classes"


class Zoo:
    @staticmethod
    def tiny(num_classes):
        return tiny_net(num_classes)


NOT_CALLABLE = 3


def broken(num_classes):
    """A factory whose own code fails, as a user's may."""
    raise RuntimeError("CUDA out of memory in my_layer\nsecond line of the message")
