"""A smaller version of benchmarks/bench_demo_load.py: concurrent clients, zero errors."""

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
    result = bench.run_load(demo_server.url, "lenet-digits.safetensors", images, 8, 6)
    print(result.report())
    assert result.errors == []
    assert len(result.latencies) == 48
    assert sum(result.batch_sizes.values()) == 48
