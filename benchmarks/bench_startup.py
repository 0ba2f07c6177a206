"""Benchmark: how long `zoo`'s commands take from process start, beside `import torch`.

    python benchmarks/bench_startup.py [--repeats 5]

Each round runs every command once, in the same order (interleaved, so a change of load on a
shared machine hits them alike); the figure is the median over the rounds, in seconds:

- `python -c "import torch"`, the floor of any command that touches a model;
- the light commands, which import no torch: `zoo --help`, `zoo list`, `zoo list 'timm/*'`,
  `zoo plugins`, `zoo datasets`, and `zoo info` of an unknown name (its error);
- `zoo info lenet` (builds the model), `zoo predict` of one image with LeNet weights;
- `zoo demo` until its page answers HTTP 200 (the process is then stopped).

The timm catalog is cached before the first round (a fresh $ZOO_CACHE, filled once), as it is
after zoo's first run on a machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DEMO = "zoo demo (first HTTP 200)"
TARGETS = {"zoo list": 0.3, "zoo info lenet": 2.5, DEMO: 4.0}


def timed(args: list[str], env: dict[str, str]) -> float:
    """Seconds for `args` to run to completion (it must succeed, or fail as expected)."""
    began = time.perf_counter()
    subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def demo_first_200(zoo: list[str], weights_dir: Path, env: dict[str, str]) -> float:
    """Seconds from starting `zoo demo` until its page answers 200."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    began = time.perf_counter()
    process = subprocess.Popen(
        [*zoo, "demo", "--weights-dir", str(weights_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - began
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"zoo demo exited with status {process.returncode}")
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    zoo = [sys.executable, "-m", "zoo"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "ZOO_CACHE": str(tmp / "cache"), "GRADIO_ANALYTICS_ENABLED": "False"}
        weights = tmp / "weights"
        setup = [*zoo, "train", "lenet", "--epochs", "1", "--limit", "100", "-q"]
        subprocess.run(
            [*setup, "--out", str(weights), "--runs-dir", str(tmp / "runs")], env=env, check=True
        )
        subprocess.run([*zoo, "list", "timm/*"], env=env, check=True, stdout=subprocess.DEVNULL)
        image = tmp / "digit.png"
        from PIL import Image
        from sklearn.datasets import load_digits

        Image.fromarray((load_digits().images[0] * 255 / 16).astype("uint8")).save(image)
        lenet = weights / "lenet-digits.safetensors"
        commands = {
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            "zoo --help": [*zoo, "--help"],
            "zoo list": [*zoo, "list"],
            "zoo list 'timm/*'": [*zoo, "list", "timm/*"],
            "zoo plugins": [*zoo, "plugins"],
            "zoo datasets": [*zoo, "datasets"],
            "zoo info no-such-model": [*zoo, "info", "no-such-model"],
            "zoo info lenet": [*zoo, "info", "lenet"],
            "zoo predict (one image)": [*zoo, "predict", str(lenet), str(image)],
        }
        times: dict[str, list[float]] = {name: [] for name in [*commands, DEMO]}
        for _ in range(args.repeats):
            for name, command in commands.items():
                times[name].append(timed(command, env))
            times[DEMO].append(demo_first_200(zoo, weights, env))
    print(f"medians of {args.repeats} interleaved rounds, {os.cpu_count()} CPUs:")
    floor = statistics.median(times['python -c "import torch"'])
    for name, values in times.items():
        median = statistics.median(values)
        target = f"  (target <= {TARGETS[name]} s)" if name in TARGETS else ""
        print(f"  {name:<28} {median:6.2f} s  {median / floor:5.2f}x import torch{target}")


if __name__ == "__main__":
    main()
