"""Networks for ``spikeforge train custom --model examples/custom_cnn.py:FUNCTION``.

Each function takes no arguments and returns a float ``torch.nn.Module`` (docs/api.md).
"""

from torch import nn


def digits():
    """8x8 digits: conv16 - conv32 (stride 2) - linear10."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10))


def mnist():
    """28x28 MNIST: the docs/api.md example's SmallCNN as a plain nn.Sequential."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(64 * 3 * 3, 10))
