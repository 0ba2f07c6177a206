"""The load run of benchmarks/bench_demo_load.py with hostile neighbours: 16 concurrent
clients x 10 requests (the benchmark's default is 25), 1 in 5 a bad file of the client's own.
No good request fails, and each bad one fails alone with its own message (the p50/p95 latency
it prints is a benchmark figure, not an assertion)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_demo_load.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_demo_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_bad_requests_fail_alone_under_load(demo_server):
    bench = load_bench()
    images = sorted(demo_server.examples_dir.glob("digits-*.png"))
    result = bench.run_load(demo_server.url, "lenet-digits.safetensors", images, 16, 10, 5)
    print(result.report())
    assert result.errors == []  # no good request failed
    assert len(result.latencies) == 16 * 8
    assert result.bad_wrong == [] and len(result.bad_answers) == 16 * 2
    assert max(result.batch_sizes) > 1  # good requests still share forward passes
