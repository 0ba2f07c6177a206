"""The load run of benchmarks/bench_demo_load.py: 8 concurrent clients x 25 requests, zero errors
(the p50/p95 latency it prints is a benchmark figure, not an assertion)."""

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


def test_concurrent_clients_all_served(demo_server):
    bench = load_bench()
    images = sorted(demo_server.examples_dir.glob("digit-*.png"))
    result = bench.run_load(demo_server.url, "lenet-digits.safetensors", images, 8, 25)
    print(result.report())
    assert result.errors == []
    assert len(result.latencies) == 200
    assert sum(result.batch_sizes.values()) == 200
