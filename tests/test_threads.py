"""The thread count chosen for the work: timed steps at each candidate count, `--threads N`."""

from __future__ import annotations

import json
import time

import pytest
import torch

from zoo.util import threads


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


def test_train_records_the_threads_it_used(zoo_cli, tmp_path):
    runs = tmp_path / "runs"
    args = f"--limit 100 --epochs 1 --out {tmp_path} --runs-dir {runs} -q"
    assert zoo_cli(f"train lenet --threads 1 {args}").code == 0
    rows = [json.loads(line) for line in (runs / "lenet-digits" / "metrics.jsonl").open()]
    assert rows[0]["threads"] == 1 and torch.get_num_threads() == 1
    assert zoo_cli(f"train lenet {args}").code == 0  # measured: some count the CPU has
    rows = [json.loads(line) for line in (runs / "lenet-digits" / "metrics.jsonl").open()]
    assert 1 <= rows[0]["threads"] <= threads.cores()


@pytest.mark.parametrize("command", ["train lenet", "predict x.safetensors x.png", "demo"])
def test_threads_below_one_are_refused(zoo_cli, tmp_path, command):
    result = zoo_cli(f"{command} --threads 0")
    assert result.code != 0 and "--threads" in result.err
    assert not list(tmp_path.iterdir())
