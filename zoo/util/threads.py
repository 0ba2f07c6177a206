"""How many threads torch's CPU operators use: the count that is fastest for the work.

torch uses one intra-op thread per core by default. For a small model (LeNet, the CIFAR CNN) a
step is a few milliseconds of small operators, and splitting them over threads costs more than
it gains; on a shared CPU, where other processes hold some of the cores, a thread waiting for
a core stalls every step (measured on a busy 2-core machine: LeNet trains at ~9,600 images/s
with 1 thread, ~4,100 with 2). So zoo times a few real steps at each candidate count (1, 2, 4,
... up to torch's setting: its default, or OMP_NUM_THREADS) and keeps the fastest; a model
whose step takes 0.1 s or more at 1 thread keeps that setting, as its big operators do use
every core. `--threads N` overrides both.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.specs import InputSpec

SMALL_STEP_S = 0.1  # a step at 1 thread shorter than this marks a small model: it is timed
TRIALS = 5  # timed steps per candidate, interleaved; the median counts
_settled = False  # whether this process's count is set (by --threads or by a measurement)


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def candidates(limit: int) -> list[int]:
    """1, 2, 4, ... up to `limit`, and `limit` itself."""
    counts = [1]
    while counts[-1] * 2 < limit:
        counts.append(counts[-1] * 2)
    return sorted({*counts, limit})


def _timed(step: Callable[[], object], threads: int) -> float:
    torch.set_num_threads(threads)
    began = time.perf_counter()
    step()
    return time.perf_counter() - began


def fastest(step: Callable[[], object], counts: list[int], default: int) -> int:
    """The thread count among `counts` at which `step` runs fastest: the median of TRIALS
    calls each, interleaved so that a change of load hits every count alike; a count twice as
    slow as the best is dropped early. `default` if a step at 1 thread takes SMALL_STEP_S or
    more (a large model: its operators are big enough to use every core)."""
    previous = torch.get_num_threads()
    try:
        _timed(step, 1)  # warm-up
        if _timed(step, 1) >= SMALL_STEP_S:
            return default
        times: dict[int, list[float]] = {n: [] for n in counts}
        for n in counts[1:]:
            _timed(step, n)  # the first call at a count pays for starting its threads
        for _ in range(TRIALS):
            for n in list(times):
                times[n].append(_timed(step, n))
            best = min(statistics.median(t) for t in times.values())
            times = {n: t for n, t in times.items() if statistics.median(t) <= 2 * best}
    finally:
        torch.set_num_threads(previous)
    return min(times, key=lambda n: statistics.median(times[n]))


def choose(model: nn.Module, example: torch.Tensor, train: bool) -> int:
    """The fastest intra-op thread count for running a small `model` on batches like
    `example` (a training step when `train`, else an inference forward); torch's default for
    large models and for other devices than the CPU."""
    default = torch.get_num_threads()  # the most this process uses (OMP_NUM_THREADS, ...)
    if example.device.type != "cpu" or len(counts := candidates(default)) == 1:
        return default
    trial = copy.deepcopy(model)  # batch-norm statistics and gradients stay untouched
    if train:
        trial.train()

        def step() -> None:
            trial.zero_grad(set_to_none=True)
            trial(example).float().sum().backward()
    else:
        trial.eval()

        @torch.inference_mode()
        def step() -> None:
            trial(example)

    return fastest(step, counts, default)


def use(threads: int | None, model: nn.Module, example: torch.Tensor, train: bool) -> int:
    """Set torch's intra-op threads to `threads`, or to `choose(...)`'s; return the count."""
    if threads is not None:
        fix(threads)
        return threads
    count = choose(model, example, train)
    torch.set_num_threads(count)
    return count


def example(spec: InputSpec, batch: int) -> torch.Tensor:
    """A batch shaped as a model's input (channels_last), to time it on."""
    x = torch.zeros(batch, spec.channels, spec.size, spec.size)
    return x.contiguous(memory_format=torch.channels_last)


def fix(threads: int) -> None:
    """Use `threads` intra-op threads in this process, whatever `settle` is asked later."""
    global _settled
    if threads < 1:
        raise ZooError("--threads must be at least 1")
    torch.set_num_threads(threads)
    _settled = True


def settle(model: nn.Module, batch: torch.Tensor, train: bool = False) -> None:
    """`use(None, ...)` the first time it is called in this process, unless `fix` was: for a
    server whose models load on demand (the demo), the first model decides."""
    global _settled
    if not _settled:
        _settled = True
        use(None, model, batch, train)
