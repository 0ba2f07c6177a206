"""The small CNN of the PyTorch CIFAR-10 tutorial, trained from scratch: 3x32x32 input,
conv 3->6->16, then 400->120->84->classes.

The declaration is plain data; torch is imported only when the model is built.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import zoo

if TYPE_CHECKING:
    from torch import nn


@cache
def network() -> type:
    """The CifarCNN module class (defined on first use: declaring the model imports no torch)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class CifarCNN(nn.Module):
        def __init__(self, num_classes: int = 10) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)

    return CifarCNN


@zoo.hookimpl
def zoo_models() -> list[zoo.ModelSpec]:
    return [
        zoo.ModelSpec(
            name="cifar-cnn",
            summary="The CIFAR-10 tutorial's CNN from scratch: conv 3->6->16, 400->120->84",
            input=zoo.InputSpec(channels=3, size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
            head="fc3",
            defaults=zoo.TrainDefaults(epochs=30, batch_size=32, lr=3e-3, weight_decay=1e-4),
        )
    ]


@zoo.hookimpl
def zoo_build(spec: zoo.ModelSpec, num_classes: int, pretrained: bool) -> nn.Module:
    return network()(num_classes)
