"""`--time-budget`: a run's epochs planned to fit a wall-clock budget, and its stop there.

The plan is made before the learning-rate schedule, which OneCycle and cosine need to know the
length of: a few of the run's own training steps are timed (the module, optimizer and random
state put back after, as the range test does) and one validation pass, and as many epochs as
fit in what is left of the budget are planned (at least one, at most `--epochs`). At each
epoch's end the run stops if another epoch, as long as the last one took, would not fit.
The budget covers the run up to its last epoch; the test split and the post-hoc fit follow.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from zoo.training import lr_find

PROBE_STEPS = 6  # timed: all but the first (which allocates)


@dataclass
class Plan:
    """The budget (seconds), the epochs planned into it and the estimated seconds of one."""

    budget: float
    epochs: int
    epoch_seconds: float

    def __post_init__(self) -> None:
        self.checked: float | None = None  # the run's seconds when `another_fits` last ran

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "epochs": self.epochs, "epoch_seconds": self.epoch_seconds}

    def another_fits(self, history: list[dict[str, Any]], elapsed: float) -> bool:
        """Whether an epoch as long as the last one still fits, asked before each epoch at
        `elapsed` seconds: the last one's wall time since then (its checkpoint included), or
        after a `--resume` its recorded training and validation seconds."""
        last = 0.0
        if history and self.checked is not None:
            last = elapsed - self.checked
        elif history:
            last = history[-1]["seconds"] + history[-1].get("val_seconds", 0.0)
        self.checked = elapsed
        return elapsed + last <= self.budget


def plan(
    run: lr_find.Trainable,
    budget: float,
    most: int,
    steps: int,
    validate: Callable[[], Any],
    elapsed: Callable[[], float],
) -> Plan:
    """The epochs of `steps` steps each (at most `most`) that fit `budget` seconds, of which
    `elapsed()` have gone; `validate()` is one validation pass (rank 0's alone under torchrun:
    each process's estimate is averaged, and every process plans the same)."""
    with lr_find.restored(run):
        run.begin_epoch()
        began = 0.0
        for i, (index, x) in enumerate(lr_find.training_batches(run, PROBE_STEPS)):
            if i == 1:
                began = time.perf_counter()
            run.step_loss(x, run.train_y[index], i)[1].item()  # .item(): the step is done
        step = (time.perf_counter() - began) / (PROBE_STEPS - 1)
    began = time.perf_counter()
    if run.ctx.is_main:
        validate()
    ctx = run.ctx
    seconds = torch.tensor([step * steps / ctx.world, time.perf_counter() - began])
    epoch = float(ctx.sum(seconds.to(ctx.device)).sum())
    left = budget - elapsed()
    epochs = max(1, min(most, math.floor(left / epoch) if epoch > 0 else most))
    if epoch > left:
        warnings.warn(
            f"--time-budget {budget:g}s: one epoch takes about {epoch:.1f}s, more than the "
            f"{max(left, 0):.1f}s left; training one",
            stacklevel=3,
        )
    return Plan(budget, epochs, epoch)
