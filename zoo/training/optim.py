"""The optimizers and learning-rate schedules `zoo train` offers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from zoo.training.config import TrainConfig


def make_optimizer(config: TrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """SGD (momentum 0.9, Nesterov), Adam or AdamW over the fine-tune strategy's groups (copies
    of them: torch writes its defaults, and later rates, into the dicts it is given), each at
    its own `lr`, or `config.lr` times its `lr_scale` (timm's key; 1 if unset)."""
    groups = [{"lr": config.lr * group.get("lr_scale", 1.0), **group} for group in groups]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    optimizer = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return optimizer(groups, lr=config.lr, weight_decay=config.weight_decay)


WARMUP_FROM = 0.01  # of the peak rate: where a warmup starts


def make_schedule(config: TrainConfig, optimizer, total_steps: int, warmup_steps: int = 0):
    """A per-step schedule over each group's rate: OneCycle to it (rising over `warmup_steps`,
    else its default 30%), cosine decay from it, or constant; the last two after a linear
    warmup from `WARMUP_FROM` of the rate over `warmup_steps`, where given."""
    lr_scheduler = torch.optim.lr_scheduler
    if config.schedule == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        rising = {"pct_start": warmup_steps / total_steps} if warmup_steps else {}
        return lr_scheduler.OneCycleLR(optimizer, peaks, total_steps=total_steps, **rising)
    if config.schedule == "cosine":
        main = lr_scheduler.CosineAnnealingLR(optimizer, total_steps - warmup_steps)
    else:
        main = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if not warmup_steps:
        return main
    warmup = lr_scheduler.LinearLR(optimizer, WARMUP_FROM, 1.0, total_iters=warmup_steps)
    return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])
