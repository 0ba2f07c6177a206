"""Threads that adapt: `zoo train` when the machine gets busy mid-run, with the thread count
re-checked while training (the default) against the count fixed at the start (`--threads N`).

Each run is `zoo train lenet -d fashion-mnist --epochs E --channels-last` (one memory format on
both sides). `--busy-after` seconds into it, another torch process (matrix products on torch's
default threads, one per core) starts and runs for `--busy-for` seconds, as another user's
training job would. The two kinds of
run alternate, `--repeats` times. Reported for each: the seconds from start to the weights file,
the training images/s of each epoch (metrics.jsonl), the thread counts the epochs ended at and
the re-checks; then the median ratio of the fixed runs' seconds to the adaptive ones'.

    python benchmarks/bench_threads.py [--epochs 6] [--busy-after 15] [--busy-for 30]
        [--threads 2] [--repeats 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Another user's torch job: matrix products on torch's default threads (one per core), whose
# workers contend with the run's as two training runs' do.
BUSY = "import torch\nx = torch.randn(384, 384)\nwhile True:\n    x @ x"


def run(folder: Path, epochs: int, threads: int | None, busy_after: float, busy_for: float):
    """One `zoo train` run with the CPU made busy mid-way; its seconds and metrics.jsonl rows."""
    command = [sys.executable, "-m", "zoo", "train", "lenet", "-d", "fashion-mnist"]
    command += ["--epochs", str(epochs), "--channels-last", "-q"]
    command += ["--out", str(folder), "--runs-dir", str(folder / "runs"), "--run-name", "r"]
    command += ["--threads", str(threads)] if threads else []
    began = time.perf_counter()
    train = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    time.sleep(busy_after)
    burners = [subprocess.Popen([sys.executable, "-c", BUSY])]
    with contextlib.suppress(subprocess.TimeoutExpired):  # the run may end while busy
        train.wait(timeout=busy_for)
    for burner in burners:
        burner.kill()
        burner.wait()
    if train.wait() != 0:
        raise SystemExit(f"zoo train failed: {' '.join(command)}")
    seconds = time.perf_counter() - began
    rows = [json.loads(line) for line in (folder / "runs" / "r" / "metrics.jsonl").open()]
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--busy-after", type=float, default=15.0)
    parser.add_argument("--busy-for", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2, help="the fixed runs' count")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, list] = {"adaptive": [], "fixed": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for kind, threads in (("adaptive", None), ("fixed", args.threads)):
                folder = Path(scratch) / f"{kind}-{repeat}"
                seconds, rows = run(folder, args.epochs, threads, args.busy_after, args.busy_for)
                results[kind].append({"seconds": seconds, "epochs": rows})
                speeds = " ".join(f"{row['images_per_s']:,.0f}" for row in rows)
                counts = " ".join(str(row["threads"]) for row in rows)
                checks = sum(len(row.get("thread_checks", [])) for row in rows)
                print(
                    f"{kind:8} repeat {repeat}: {seconds:6.1f} s to the weights file; "
                    f"images/s by epoch {speeds}; threads {counts}; {checks} re-checks"
                )
    ratios = [
        fixed["seconds"] / adaptive["seconds"]
        for adaptive, fixed in zip(results["adaptive"], results["fixed"], strict=True)
    ]
    print(
        f"fixed --threads {args.threads} / adaptive, seconds to the weights file: "
        f"{statistics.median(ratios):.2f}x (median of {len(ratios)})"
    )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, **results}))


if __name__ == "__main__":
    main()
