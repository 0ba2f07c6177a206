"""`--ema DECAY`: an exponential moving average of the trained module's weights (timm's
`ModelEmaV3`, its decay warmed up so that a short run's average is not its first steps')."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class WeightAverage:
    """The average of `module`'s weights (parameters and buffers) over the optimizer steps."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        from timm.utils import ModelEmaV3

        self.average = ModelEmaV3(module, decay=decay, use_warmup=True)

    def update(self, module: nn.Module, step: int) -> None:
        """Fold in `module`'s weights after the run's `step`-th optimizer step (from 1)."""
        self.average.update(module, step=step)

    @contextlib.contextmanager
    def applied(self, module: nn.Module) -> Iterator[None]:
        """`module` holding the average's weights inside the block, its own ones after."""
        own = {k: v.detach().clone() for k, v in module.state_dict().items()}
        with torch.no_grad():
            module.load_state_dict(self.average.module.state_dict())
        try:
            yield
        finally:
            with torch.no_grad():
                module.load_state_dict(own)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.average.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.average.module.load_state_dict(state)
