"""The thread count and memory format chosen for the work: timed steps at each candidate
count and format, re-checked as the load changes; `--threads N`."""

from __future__ import annotations

import json
import time

import pytest
import torch
from torch import nn

from zoo.util import layout, threads


def test_candidates_are_powers_of_two_and_the_cores():
    assert threads.candidates(1) == [1]
    assert threads.candidates(2) == [1, 2]
    assert threads.candidates(6) == [1, 2, 4, 6]
    assert threads.candidates(8) == [1, 2, 4, 8]


def test_fastest_keeps_the_count_with_the_shortest_steps():
    def slower_with_threads():  # 10 ms at 1 thread, 40 ms at 2: clear of a busy CPU's jitter
        time.sleep(0.01 * torch.get_num_threads() ** 2)

    def faster_with_threads():
        time.sleep(0.04 / torch.get_num_threads() ** 2)

    before = torch.get_num_threads()
    assert threads.fastest(slower_with_threads, [1, 2], default=2) == 1
    assert threads.fastest(faster_with_threads, [1, 2], default=1) == 2
    assert torch.get_num_threads() == before  # measuring leaves the setting as it was


def test_a_large_step_keeps_the_default():
    assert threads.fastest(lambda: time.sleep(threads.SMALL_STEP_S), [1, 2], default=7) == 7


def test_choosing_leaves_the_model_untouched(registry):
    spec = registry.model("lenet")
    torch.manual_seed(0)
    model = registry.build(spec, num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count = threads.choose(model, threads.example(spec.input, 64), train=True)
    assert 1 <= count <= max(threads.cores(), torch.get_num_threads())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class Machine:
    """A CPU whose step seconds depend on the thread count and on whether another process is
    busy: a clock the watch reads, advanced by each step it runs."""

    def __init__(self):
        self.now, self.busy = 0.0, False

    def clock(self) -> float:
        return self.now

    def step(self) -> None:  # 2 threads are fastest when idle, 20x slower when busy
        seconds = {(1, False): 1.0, (2, False): 0.6, (1, True): 1.2, (2, True): 12.0}
        self.now += seconds[torch.get_num_threads(), self.busy]


def run(watch: threads.ThreadWatch, machine: Machine, steps: int) -> list[int]:
    counts = []
    for _ in range(steps):
        watch.run(machine.step, images=1)
        counts.append(torch.get_num_threads())
    return counts


def test_the_watch_falls_back_when_threads_collapse_and_recovers_after():
    machine, before = Machine(), torch.get_num_threads()
    watch = threads.ThreadWatch([1, 2], chosen=2, clock=machine.clock)
    try:
        assert set(run(watch, machine, 40)) == {2} and not watch.checks  # a steady pace
        machine.busy = True
        counts = run(watch, machine, 40)
        assert counts[-1] == 1 and watch.current == 1
        first = watch.checks[0]
        assert (first["from"], first["to"]) == (2, 1)
        assert first["seconds_per_image"]["2"] > 5 * first["seconds_per_image"]["1"]
        # while it stays busy, re-checks cost at most a twentieth of the time
        busy_since, checks = machine.now, len(watch.checks)
        run(watch, machine, 400)
        trial_seconds = 12.0 * threads.TRIALS * (len(watch.checks) - checks)
        assert trial_seconds <= (machine.now - busy_since) / threads.COOL_DOWN + 12 * 3
        machine.busy = False  # its threads back, once the cool-down after the last check ends
        last = watch.checks[-1]
        counts = run(watch, machine, 1500)
        assert watch.current == 2 and counts[-1] == 2 and watch.checks[-1]["to"] == 2
        assert watch.checks[-1]["step"] - last["step"] < 400
    finally:
        torch.set_num_threads(before)


def test_a_fixed_count_is_kept_however_slow_the_steps():
    machine, before = Machine(), torch.get_num_threads()
    torch.set_num_threads(2)
    watch = threads.watch(2, chosen=2, limit=2, device=torch.device("cpu"))
    watch.clock = machine.clock
    try:
        run(watch, machine, 20)
        machine.busy = True
        assert set(run(watch, machine, 100)) == {2} and not watch.checks
    finally:
        torch.set_num_threads(before)


def test_train_records_the_threads_it_used(zoo_cli, tmp_path):
    runs = tmp_path / "runs"
    args = f"--limit 100 --epochs 1 --out {tmp_path} --runs-dir {runs} -q"
    assert zoo_cli(f"train lenet --threads 1 {args}").code == 0
    rows = [json.loads(line) for line in (runs / "lenet-digits" / "metrics.jsonl").open()]
    assert rows[0]["threads"] == 1 and torch.get_num_threads() == 1
    assert rows[0]["thread_checks"] == [] and isinstance(rows[0]["channels_last"], bool)
    assert zoo_cli(f"train lenet {args}").code == 0  # measured: some count the CPU has
    rows = [json.loads(line) for line in (runs / "lenet-digits" / "metrics.jsonl").open()]
    assert 1 <= rows[0]["threads"] <= threads.cores()


@pytest.mark.parametrize("command", ["train lenet", "predict x.safetensors x.png", "demo"])
def test_threads_below_one_are_refused(zoo_cli, tmp_path, command):
    result = zoo_cli(f"{command} --threads 0")
    assert result.code != 0 and "--threads" in result.err
    assert not list(tmp_path.iterdir())


class FormatBound(nn.Module):
    """A convolution that sleeps `slow_s` when its input is not in `fast` memory format."""

    def __init__(self, fast: torch.memory_format, slow_s: float = 0.02):
        super().__init__()
        self.conv, self.fast, self.slow_s = nn.Conv2d(3, 4, 3), fast, slow_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_contiguous(memory_format=self.fast):
            time.sleep(self.slow_s)
        return self.conv(x)


@pytest.mark.parametrize("fast", layout.FORMATS)
def test_the_faster_memory_format_is_chosen(fast):
    model = FormatBound(fast)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    example = torch.zeros(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    assert layout.fastest(model, example) == fast
    assert all(p.grad is None for p in model.parameters())  # timed on a copy
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_long_step_keeps_channels_last():
    model = FormatBound(torch.contiguous_format, slow_s=layout.LONG_STEP_S)
    example = torch.zeros(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    assert layout.fastest(model, example) == torch.channels_last
