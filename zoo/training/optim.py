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


def make_schedule(config: TrainConfig, optimizer, total_steps: int):
    """A per-step schedule over each group's rate: OneCycle to it, cosine decay from it, or
    constant."""
    if config.schedule == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, peaks, total_steps=total_steps)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
