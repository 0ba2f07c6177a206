"""The learning-rate range test (Leslie Smith, 2015; fastai's `lr_find`): a short run whose rate
grows exponentially from `START` to `END`, one training step each, recording the smoothed
loss, until the loss diverges; then the model and optimizer are put back as they were.

The test trains exactly as `zoo train` would (the run's own step: its preprocessing,
augmentation, loss, optimizer and fine-tune strategy), which is why zoo runs it on the run
itself rather than through a DataLoader-based finder. The suggestion is fastai's "valley": the
point halfway along the longest stretch over which the smoothed loss keeps falling.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from zoo.data.stream import batches
from zoo.training.checkpoint import rng_state, set_rng_state
from zoo.training.config import TrainConfig
from zoo.training.distributed import Context
from zoo.util.files import atomic_write

START, END = 1e-7, 10.0
STEPS = 100
SMOOTHING = 0.98  # of the loss's exponential moving average, as fastai's
DIVERGED = 4.0  # the test stops once the smoothed loss exceeds this many times its least
FIGURE = "lr-find.png"
SKIP = (10, 5)  # first and last recorded steps the suggestion ignores (as fastai's)


class Trainable(Protocol):
    """What the test needs of a run (`zoo.training.loop`'s): its module, optimizer, settings,
    process context and training inputs, and its own training step."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    ctx: Context
    train_x: Any
    train_y: torch.Tensor

    def begin_epoch(self) -> None: ...

    def step_loss(
        self, x: torch.Tensor, y: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


@dataclass
class RangeTest:
    """The rates tried, the smoothed loss at each, and the suggested rate."""

    rates: list[float]
    losses: list[float]
    suggestion: float

    def plot(self, path: Path, title: str) -> Path:
        """Loss against rate (log scale) as a PNG, the suggestion marked."""
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 4), layout="constrained")
        ax = figure.subplots()
        ax.plot(self.rates, self.losses, color="#4a6fa5")
        ax.axvline(self.suggestion, color="#f97316", linestyle="--")
        ax.scatter([self.suggestion], [_at(self, self.suggestion)], color="#f97316", zorder=3)
        ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)")
        ax.set_title(f"{title}\nsuggested --lr {self.suggestion:.2g}", fontsize=10)
        return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))


def _at(test: RangeTest, rate: float) -> float:
    return test.losses[test.rates.index(rate)]


def range_test(
    run: Trainable, steps: int = STEPS, start: float = START, end: float = END
) -> RangeTest:
    """Train `run` for up to `steps` steps at rates from `start` to `end`; restore its model,
    optimizer and random state afterwards, whatever happens."""
    optimizer = run.optimizer
    factor = (end / start) ** (1 / max(steps - 1, 1))
    rates: list[float] = []
    losses: list[float] = []
    average = 0.0
    with restored(run):
        run.begin_epoch()
        for i, (index, x) in enumerate(training_batches(run, steps)):
            rate = start * factor**i
            for group in optimizer.param_groups:
                group["lr"] = rate * group.get("lr_scale", 1.0)
            loss = run.step_loss(x, run.train_y[index], i)[1].item()
            if not math.isfinite(loss):
                break
            average = SMOOTHING * average + (1 - SMOOTHING) * loss
            smoothed = average / (1 - SMOOTHING ** (i + 1))
            rates.append(rate)
            losses.append(smoothed)
            if smoothed > DIVERGED * min(losses):
                break
    return RangeTest(rates, losses, valley(rates, losses))


@contextlib.contextmanager
def restored(run: Trainable) -> Iterator[None]:
    """`run`'s module, optimizer and global random state put back as they were after the block
    (a trial of its steps), whatever happens."""
    module, optimizer = run.module, run.optimizer
    saved = copy.deepcopy(module.state_dict()), copy.deepcopy(optimizer.state_dict())
    random = rng_state()
    try:
        yield
    finally:
        module.load_state_dict(saved[0])
        optimizer.load_state_dict(saved[1])
        set_rng_state(random)


def training_batches(run: Trainable, count: int):
    """`count` training batches of `run`, in fresh orders, passing over its data as often as
    that takes."""
    generator = torch.Generator().manual_seed(run.config.seed)
    done = 0
    while done < count:
        order = run.ctx.shard(torch.randperm(len(run.train_y), generator=generator))
        for batch in batches(run.train_x, order, run.config.batch_size, run.ctx.device):
            if done == count:
                return
            done += 1
            yield batch


def valley(rates: list[float], losses: list[float]) -> float:
    """fastai's suggestion: the longest run of falling losses (not necessarily adjacent), and
    the rate halfway along it (fastai's index, start + int(n / 3) + int(n / 6)); the first and
    last points (`SKIP`) left out where there are enough."""
    first, last = SKIP if len(losses) > sum(SKIP) + 2 else (0, 0)
    rates, losses = rates[first : len(rates) - last], losses[first : len(losses) - last]
    if not rates:
        return START
    longest = [1] * len(losses)
    end = 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[end]:
            end = i
    start = end - longest[end]
    third = (end - start) / 3
    return rates[max(0, start + int(third) + int(third / 2))]
