"""The memory format a model trains fastest in on the CPU: channels_last or contiguous, timed.

channels_last lets oneDNN run convolutions over many channels faster: EfficientNet-Lite0 at
48 px trains 1.7x faster in it than contiguous (NCHW) here. For a narrow network the element-
wise operators between its convolutions (ReLU, pooling and their gradients), with 6 or 16
channels innermost, run slower in it: LeNet trains 1.6x faster contiguous. So zoo times a few
real steps in each format, as it times thread counts, and trains in the faster; a step that
takes `LONG_STEP_S` or more keeps channels_last, as the timing would cost more than it tells.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn

from zoo.util.threads import trial_step

FORMATS = (torch.channels_last, torch.contiguous_format)
TRIALS = 3  # timed steps per format, interleaved; the median counts
LONG_STEP_S = 1.0


def fastest(model: nn.Module, example: torch.Tensor) -> torch.memory_format:
    """The memory format in which a training step of `model` on batches like `example` (4-d
    model inputs on the CPU) runs fastest; channels_last elsewhere."""
    if example.device.type != "cpu" or example.dim() != 4:
        return torch.channels_last
    trial = copy.deepcopy(model)
    times: dict[torch.memory_format, list[float]] = {f: [] for f in FORMATS}
    for trial_number in range(TRIALS + 1):
        for memory_format in FORMATS:
            trial.to(memory_format=memory_format)
            step = trial_step(trial, example.contiguous(memory_format=memory_format), train=True)
            began = time.perf_counter()
            step()
            seconds = time.perf_counter() - began
            if trial_number == 0:  # the warm-up
                if seconds >= LONG_STEP_S:
                    return torch.channels_last
                continue
            times[memory_format].append(seconds)
    return min(FORMATS, key=lambda f: statistics.median(times[f]))
