"""How many threads torch's CPU operators use: the count that is fastest for the work.

torch uses one intra-op thread per core by default. For a small model (LeNet, the CIFAR CNN) a
step is a few milliseconds of small operators, and splitting them over threads costs more than
it gains; on a shared CPU, where other processes hold some of the cores, a thread waiting for
a core stalls every step (measured on a busy 2-core machine: LeNet trains at ~9,600 images/s
with 1 thread, ~4,100 with 2). So zoo times a few real steps at each candidate count (1, 2, 4,
... up to torch's setting: its default, or OMP_NUM_THREADS) and keeps the fastest; a model
whose step takes 0.1 s or more at 1 thread keeps that setting, as its big operators do use
every core. `--threads N` overrides both.

The load of a shared machine changes while a run trains: measured here, 2 threads that were
fastest at the start ran 30x slower once another process took a core. So `ThreadWatch` keeps
timing the real training steps and re-chooses among the same counts, on those steps, when they
slow down, and tries the first choice again from time to time after falling back.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.specs import InputSpec

SMALL_STEP_S = 0.1  # a step at 1 thread shorter than this marks a small model: it is timed
TRIALS = 5  # timed steps per candidate, interleaved; the median counts
WINDOW = 16  # steps whose median sets the pace a re-check is judged against
SLOW = 2.0  # steps this many times slower than the pace start a re-check; than the best: dropped
RECENT = 4  # the steps whose median counts as recent
COOL_DOWN = 20  # after a re-check, none for this many times its own seconds
RETRY_S = 30.0  # training seconds, after falling back, before the first choice is tried again
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
    calls each, interleaved so that a change of load hits every count alike; a count `SLOW`
    times slower than the best is dropped early. `default` if a step at 1 thread takes
    SMALL_STEP_S or more (a large model: its operators are big enough to use every core)."""
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
            slow = too_slow(medians(times))
            times = {n: t for n, t in times.items() if n not in slow}
    finally:
        torch.set_num_threads(previous)
    return min(times, key=lambda n: statistics.median(times[n]))


def medians(times: dict[int, list[float]]) -> dict[int, float]:
    """The median of each count's timed steps (counts not yet timed left out)."""
    return {n: statistics.median(t) for n, t in times.items() if t}


def too_slow(timed: dict[int, float]) -> set[int]:
    """The counts whose median is more than `SLOW` times the best: not worth timing again."""
    best = min(timed.values())
    return {n for n, m in timed.items() if m > SLOW * best}


def choose(model: nn.Module, example: torch.Tensor, train: bool, limit: int | None = None) -> int:
    """The fastest intra-op thread count up to `limit` (torch's current setting: its default,
    or OMP_NUM_THREADS) for running a small `model` on batches like `example` (a training step
    when `train`, else an inference forward); `limit` for large models and for other devices
    than the CPU."""
    default = limit or torch.get_num_threads()
    if example.device.type != "cpu" or len(counts := candidates(default)) == 1:
        return default
    return fastest(trial_step(copy.deepcopy(model), example, train), counts, default)


def trial_step(trial: nn.Module, example: torch.Tensor, train: bool) -> Callable[[], None]:
    """A step of `trial` (a copy of the model, whose batch-norm statistics and gradients it
    changes) on `example` to time: forward and backward when `train`, else a forward."""
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

    return step


def use(
    threads: int | None,
    model: nn.Module,
    example: torch.Tensor,
    train: bool,
    limit: int | None = None,
) -> int:
    """Set torch's intra-op threads to `threads`, or to `choose(...)`'s; return the count."""
    if threads is not None:
        fix(threads)
        return threads
    count = choose(model, example, train, limit)
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


T = TypeVar("T")


class ThreadWatch:
    """Runs training steps at the thread count that is fastest now, not only at the start.

    Each step's seconds per image are timed. Once `WINDOW` steps at a count have set its pace,
    a median of the last `RECENT` steps `SLOW` times slower starts a re-check: the next steps
    run up to `TRIALS` times at each of `counts` in turn (real steps: nothing is thrown away;
    a count `SLOW` times slower than the best is not tried again), and the count with the
    shortest median is kept. After falling below the first choice, it is
    re-checked every `RETRY_S` seconds, so a run gets its threads back when the load goes.
    Re-checks are spaced at least `COOL_DOWN` times the last one's length apart, so that they
    cost at most a twentieth of the time even when every one finds the machine still busy.
    Each is recorded in `checks` (the step, the counts before and after, the median seconds
    per image)."""

    def __init__(
        self, counts: list[int], chosen: int, clock: Callable[[], float] = time.perf_counter
    ):
        self.counts, self.chosen, self.current, self.clock = counts, chosen, chosen, clock
        self.steps = 0
        self.checks: list[dict[str, Any]] = []
        self._recent: deque[float] = deque(maxlen=WINDOW)
        self._pace: float | None = None
        self._queue: list[int] = []
        self._trials: dict[int, list[float]] = {}
        self._began = self._quiet_until = self._fell_back_at = 0.0

    def run(self, step: Callable[[], T], images: int) -> T:
        """Run `step` (a training step on `images` images) at the count the watch picks."""
        count = self._queue[0] if self._queue else self.current
        if count != torch.get_num_threads():
            torch.set_num_threads(count)
        began = self.clock()
        result = step()
        self._record(count, (self.clock() - began) / max(images, 1))
        self.steps += 1
        return result

    def _record(self, count: int, seconds: float) -> None:
        if len(self.counts) == 1:
            return
        if self._queue:
            self._queue.pop(0)
            self._trials[count].append(seconds)
            timed = medians(self._trials)
            slow = too_slow(timed)
            self._queue = [n for n in self._queue if n not in slow]
            if len(set(self._queue)) < 2:
                self._decide(timed)
            return
        self._recent.append(seconds)
        if self._pace is None:
            if len(self._recent) == WINDOW:
                self._pace = statistics.median(self._recent)
            return
        now = self.clock()
        recent = statistics.median(list(self._recent)[-RECENT:])
        retry = self.current < self.chosen and now - self._fell_back_at >= RETRY_S
        if now >= self._quiet_until and (recent > SLOW * self._pace or retry):
            order = [self.current, *(n for n in self.counts if n != self.current)]
            self._queue = [n for _ in range(TRIALS) for n in order]
            self._trials = {n: [] for n in self.counts}
            self._began = now

    def _decide(self, timed: dict[int, float]) -> None:
        self._queue = []
        best = min(timed, key=timed.__getitem__)
        now = self.clock()
        self.checks.append(
            {
                "step": self.steps,
                "from": self.current,
                "to": best,
                "seconds_per_image": {str(n): m for n, m in timed.items()},
            }
        )
        if best < self.chosen:
            self._fell_back_at = now
        self.current = best
        self._recent.clear()
        self._pace = None
        self._quiet_until = now + COOL_DOWN * (now - self._began)


def watch(threads: int | None, chosen: int, limit: int, device: torch.device) -> ThreadWatch:
    """A `ThreadWatch` over the counts `choose` picks among up to `limit`; one that keeps
    `chosen` where the count is fixed (`--threads N`) or the model runs on another device than
    the CPU."""
    counts = candidates(limit)
    if threads is not None or device.type != "cpu" or chosen not in counts:
        counts = [chosen]
    return ThreadWatch(counts, chosen)
