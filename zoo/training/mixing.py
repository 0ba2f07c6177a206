"""`--mixup ALPHA` and `--cutmix ALPHA`: timm's `Mixup` on a prepared batch, its soft targets
(label smoothing folded in) trained with timm's `SoftTargetCrossEntropy`, reproducibly: its
NumPy draws come from a seed the step's CPU generator gives."""

from __future__ import annotations

import numpy as np
import torch


class BatchMixing:
    """Mixup or CutMix (one of the two per batch when both are on) of each training batch."""

    def __init__(self, mixup: float, cutmix: float, smoothing: float, classes: int) -> None:
        from timm.data import Mixup
        from timm.loss import SoftTargetCrossEntropy

        self.mix = Mixup(
            mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=smoothing, num_classes=classes
        )
        self.loss = SoftTargetCrossEntropy()

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixed batch and its soft targets. timm mixes a batch with its reverse, so an odd
        batch's last image is left as it is (its smoothed one-hot target)."""
        even = len(y) - len(y) % 2
        if even == 0:
            return x, self.smoothed(y)
        seed = int(torch.randint(2**32, (1,), generator=generator))
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            mixed, targets = self.mix(x[:even].clone(), y[:even])
        finally:
            np.random.set_state(state)
        if even == len(y):
            return mixed, targets
        return torch.cat([mixed, x[even:]]), torch.cat([targets, self.smoothed(y[even:])])

    def smoothed(self, y: torch.Tensor) -> torch.Tensor:
        """Labels as unmixed soft targets: one-hot, label smoothing applied."""
        from timm.data.mixup import mixup_target

        return mixup_target(y, self.mix.num_classes, 1.0, self.mix.label_smoothing)
