"""Load run of the demo's API: concurrent gradio_client clients calling /classify, each with
its own connection, against the app served in-process. Prints p50/p95 latency, the good
requests that failed, and the batch sizes the server formed (concurrent requests share a
forward pass). With --bad-every N, every Nth request of a client sends a file of its own that
is not an image: it must fail alone, with a message naming that file and no other.

    python benchmarks/bench_demo_load.py [--weights-dir weights] [--clients 16] [--requests 25]
        [--bad-every 5]

Without usable weights in the folder, a LeNet is first trained on digits for 5 epochs.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, per good request answered
    errors: list[str] = field(default_factory=list)  # good requests that failed
    bad_answers: list[str] = field(default_factory=list)  # bad requests: their own message
    bad_wrong: list[str] = field(default_factory=list)  # bad requests answered otherwise
    batch_sizes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def report(self) -> str:
        good = len(self.latencies) + len(self.errors)
        bad = len(self.bad_answers) + len(self.bad_wrong)
        n = good + bad
        if not self.latencies:
            return f"{n} requests, all failed"
        bad_part = (
            f"; {bad} bad requests, {len(self.bad_answers)} answered with their own message"
            if bad
            else ""
        )
        return (
            f"{n} requests in {self.seconds:.1f}s ({n / self.seconds:.1f}/s): {good} good, "
            f"{len(self.errors)} failed{bad_part}; good latency p50 "
            f"{self.percentile(50) * 1000:.0f} ms, p95 {self.percentile(95) * 1000:.0f} ms, mean "
            f"{statistics.mean(self.latencies) * 1000:.0f} ms; server batch sizes "
            f"{dict(sorted(self.batch_sizes.items()))}"
        )


def bad_file(folder: Path, client: int) -> Path:
    """Client `client`'s own bad upload: a text file named as a PNG."""
    path = folder / f"attacker-{client}.png"
    path.write_text(f"client {client} sends text, not an image\n")
    return path


def run_load(
    url: str,
    weights: str,
    images: list[Path],
    clients: int,
    requests: int,
    bad_every: int = 0,
) -> LoadResult:
    """`clients` concurrent clients, each sending `requests` images to /classify in turn, every
    `bad_every`th of them (0: none) a bad file of the client's own."""
    from gradio_client import Client, handle_file

    result = LoadResult()
    folder = Path(tempfile.mkdtemp(prefix="bench-demo-bad-"))

    def one_client(index: int) -> None:
        client = Client(url, verbose=False)
        bad = bad_file(folder, index)
        for i in range(requests):
            if bad_every and i % bad_every == bad_every - 1:
                try:
                    client.predict(weights, handle_file(bad), api_name="/classify")
                    result.bad_wrong.append(f"{bad.name}: classified")
                except Exception as error:  # the expected answer: its own one-line message
                    message = str(error)
                    own = message.startswith(f"{bad.name}: not an image file")
                    (result.bad_answers if own else result.bad_wrong).append(message)
                continue
            image = images[(index + i) % len(images)]
            started = time.perf_counter()
            try:
                _, _, latency = client.predict(weights, handle_file(image), api_name="/classify")
            except Exception as error:  # counted, not raised: the run reports every failure
                result.errors.append(f"{type(error).__name__}: {error}")
                continue
            result.latencies.append(time.perf_counter() - started)
            result.batch_sizes[int(re.search(r"batch of (\d+)", latency).group(1))] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one_client, range(clients)))
    result.seconds = time.perf_counter() - started
    return result


def train_lenet(registry) -> Path:
    """A folder with a LeNet trained on digits for 5 epochs, for a run with no weights given."""
    from zoo.training.config import TrainConfig
    from zoo.training.loop import train

    folder = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    spec = registry.model("lenet")
    config = TrainConfig.for_model(spec, epochs=5)
    train(registry, spec, config, folder / "lenet-digits.safetensors", progress=False)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"))
    parser.add_argument("--weights", help="weights file name (default: the first usable one)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=25, help="per client")
    parser.add_argument(
        "--bad-every", type=int, default=5, help="every Nth request is a bad file (0: none)"
    )
    args = parser.parse_args()

    from zoo.demo.app import build_app, serve
    from zoo.demo.examples import default_folder
    from zoo.demo.shelf import WeightsShelf
    from zoo.registry import get_registry

    registry = get_registry()
    if not WeightsShelf(registry, args.weights_dir).choices():
        args.weights_dir = train_lenet(registry)
    weights = args.weights or WeightsShelf(registry, args.weights_dir).choices()[0][1]
    app = build_app(WeightsShelf(registry, args.weights_dir))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve(app, port=port, prevent_thread_lock=True)
    try:
        images = sorted(default_folder().glob("digit-*.png"))
        url = f"http://127.0.0.1:{port}/"
        result = run_load(url, weights, images, args.clients, args.requests, args.bad_every)
    finally:
        app.close()
    print(f"{args.clients} clients x {args.requests} requests, {weights}: {result.report()}")
    for error in result.errors[:5]:
        print("good request failed:", error)
    for answer in result.bad_wrong[:5]:
        print("bad request answered wrongly:", answer)


if __name__ == "__main__":
    main()
