"""`zoo train` against its peers on Fashion-MNIST: timm's `train.py` and the seed tutorials' plain
loop, each run as its users run it, a process of its own, interleaved in one run (zoo, timm,
seed, zoo, timm, seed, ...; --repeats).

All three read the same files: Debian's `dataset-fashion-mnist` unpacked into a temporary folder
in torchvision's layout (`DIR/FashionMNIST/raw/*-ubyte`, which torchvision's `FashionMNIST`,
and so timm's `torch/fashion_mnist`, read without a download; `--limit N` keeps the first N
training images there), tested on all 10,000 test images. The same model (`resnet18`, one grey
input channel: zoo sums its first convolution's filters, timm builds it with `--in-chans 1`, the
seed loop replaces `conv1`), image size, epochs, batch, AdamW at the same rate and weight decay,
and thread count (`OMP_NUM_THREADS` for all three; zoo's `--threads`; the seed loop's
`torch.set_num_threads`). The rest is each tool's own default: zoo holds out 10% of the training
images, uses a one-cycle schedule and no augmentation; timm's train.py trains on all of them with
its random-resized crops, flips and colour jitter, label smoothing 0.1, a per-epoch cosine
schedule (`--warmup-epochs 0` is passed: its 5 warmup epochs would keep a 1-epoch run at 1e-5),
validates on the test split (`--val-split test`, `--crop-pct 1` so it sees the whole image) and
drops the last partial batch; the seed loop uses a constant rate, no augmentation. `--model
lenet` (which timm does not build) compares zoo with the seed loop only.

Per tool: wall seconds from process start to its trained weights file (the file's mtime) and to
the end of the process; training images/s (zoo's metrics.jsonl, timm's last `Train:` log line,
the seed loop's timed training phase); test accuracy (zoo's weights file; timm's own logged top-1
on the test split, from its summary.csv; the seed loop's check_accuracy); peak RSS of the
main process (`os.wait4`; a DataLoader worker's RSS is its own, not added), and the peak of the
process tree's proportional set size (PSS, the pages shared between the processes split among
them; summed over the process and its DataLoader workers, sampled every 0.5 s): the memory the
run takes from the machine.

timm's wheel and sdist do not ship train.py: it is looked for beside the installed timm, else
give its path (`--timm-train`, a copy of the script from timm's repository).

    python benchmarks/bench_peers.py --timm-train PATH --limit 6000           # a quick check
    python benchmarks/bench_peers.py --timm-train PATH [--repeats 3] [--json out.json]
    python benchmarks/bench_peers.py --model lenet --epochs 2
"""

from __future__ import annotations

import argparse
import csv
import gzip
import itertools
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from math import prod
from pathlib import Path

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# The seed loop's Normalize: the ImageNet statistics averaged over RGB for the ResNet (as zoo
# normalises grey input to it), the tutorials' 0.5 for LeNet.
NORMALIZE = {"resnet18": ((0.449,), (0.226,)), "lenet": ((0.5,), (0.5,))}
TIMM_BUILDS = ("resnet18",)  # the models timm's train.py builds under the same name
PSS_EVERY = 10  # polls (of 50 ms) between two samples of the process tree's PSS: 0.5 s
SEED_LOOP = "seed-loop"  # the command line's first word that runs the seed loop itself


@dataclass(frozen=True)
class Settings:
    """What all three tools are given alike."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    threads: int
    image_size: int
    seed: int


@dataclass
class Run:
    """One tool's run, measured."""

    tool: str
    seconds_to_weights: float
    seconds: float
    images_per_s: float
    test_accuracy: float
    peak_rss_mb: float
    peak_pss_mb: float
    train_images: int
    detail: str = ""


# -- the data ---------------------------------------------------------------------------------


def unpack_idx(source: Path, target: Path, limit: int | None = None) -> int:
    """Debian's gzipped IDX file `source` unpacked to `target`, only its first `limit` items
    where given (the count in its header changed to match); returns the items written."""
    data = gzip.decompress(source.read_bytes())
    if data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{source} is not an IDX file of unsigned bytes")
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    count = shape[0] if limit is None else min(limit, shape[0])
    start = 4 + 4 * dims
    body = data[start : start + count * prod(shape[1:])]
    target.write_bytes(data[:4] + struct.pack(f">{dims}I", count, *shape[1:]) + body)
    return count


def prepare_data(root: Path, limit: int | None = None, source: Path = DEBIAN) -> int:
    """Fashion-MNIST in torchvision's layout under `root` (`FashionMNIST/raw/`), the training
    split cut to its first `limit` images; returns the training images."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    counts = {
        name: unpack_idx(source / f"{name}.gz", raw / name, limit if "train" in name else None)
        for name in IDX_FILES
    }
    return counts["train-images-idx3-ubyte"]


# -- a process, measured ----------------------------------------------------------------------


@dataclass
class Process:
    """A finished process: when it ended (epoch seconds), its wall seconds, peak RSS, the peak
    PSS of its process tree, log."""

    ended: float
    seconds: float
    peak_rss_mb: float
    peak_pss_mb: float
    log: str


def tree_pss_mb(pid: int) -> float:
    """The PSS of process `pid` and its descendants, in MB (0 for those already gone)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in rollup.splitlines() if line[:4] == "Pss:")
        pending += [int(child) for child in children]
    return total / 1024


def measured(command: list[str], threads: int, log: Path) -> Process:
    """`command` run to its end with `threads` threads, its stdout and stderr into `log`; its
    peak RSS from `os.wait4` (this process's own, or its largest child's), and the peak PSS of
    its process tree, sampled every `PSS_EVERY` polls of 50 ms (each sample reads smaps_rollup
    of every process in the tree: at every poll that took a quarter of a core from the runs)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    began, peak_pss = time.perf_counter(), 0.0
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        for poll in itertools.count():
            done, status, usage = os.wait4(process.pid, os.WNOHANG)
            if done:
                break
            if poll % PSS_EVERY == 0:
                peak_pss = max(peak_pss, tree_pss_mb(process.pid))
            time.sleep(0.05)
    seconds, ended = time.perf_counter() - began, time.time()
    process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if process.returncode:
        tail = "\n".join(text.splitlines()[-15:])
        sys.exit(f"error: {' '.join(command[:3])} ... exited {process.returncode}:\n{tail}")
    return Process(ended, seconds, usage.ru_maxrss / 1024, peak_pss, text)


def seconds_to(process: Process, folder: Path, pattern: str) -> float:
    """Seconds from `process`'s start to the last change of the newest file in `folder` that
    matches `pattern`: when its weights file was complete. Counted back from the process's end,
    so that only the wall clock's seconds after the file count (it may be stepped meanwhile:
    it was, by a minute, in a run here)."""
    files = list(folder.glob(pattern))
    if not files:
        sys.exit(f"error: no {pattern} in {folder}")
    return process.seconds - (process.ended - max(f.stat().st_mtime for f in files))


# -- the three tools --------------------------------------------------------------------------


def weights_metrics(path: Path) -> dict:
    """The `metrics` of a zoo weights file, from its safetensors header (8 bytes of length,
    then JSON). Read here without torch: this process imports none, so that no page of torch's
    libraries is shared with (and its PSS split off) the runs it measures."""
    with path.open("rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
    return json.loads(header["__metadata__"]["metrics"])


def run_zoo(settings: Settings, data: Path, out: Path) -> Run:
    """`zoo train` as a user runs it: the CLI in its own process."""
    command = [str(Path(sys.executable).with_name("zoo")), "train", settings.model]
    command += ["-d", "fashion-mnist", "--data-dir", str(data), "--optimizer", "adamw"]
    command += _flags(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        threads=settings.threads,
        image_size=settings.image_size,
        seed=settings.seed,
        out=out / "weights",
        runs_dir=out / "runs",
        run_name="peers",
    )
    process = measured([*command, "--quiet"], settings.threads, out / "zoo.log")
    weights = min((out / "weights").glob("*.safetensors"))  # the one it wrote
    rows = [json.loads(line) for line in (out / "runs" / "peers" / "metrics.jsonl").open()]
    metrics = weights_metrics(weights)
    trained = sum(row["images_per_s"] * row["seconds"] for row in rows)
    summary = [line for line in process.log.splitlines() if line.startswith("seconds:")]
    return Run(
        "zoo train",
        seconds_to(process, weights.parent, f"{weights.name}*"),
        process.seconds,
        trained / sum(row["seconds"] for row in rows),
        metrics["test_accuracy"],
        process.peak_rss_mb,
        process.peak_pss_mb,
        metrics["train_images"],
        summary[-1] if summary else "",
    )


def _flags(**values) -> list[str]:
    """`--name value` for each keyword, underscores as dashes."""
    pairs = ((f"--{key.replace('_', '-')}", str(value)) for key, value in values.items())
    return [part for pair in pairs for part in pair]


def timm_train_py(given: Path | None) -> Path | None:
    """timm's train.py: `given`, else one beside the installed timm package (a source checkout
    installed in place has it), else None."""
    if given is not None:
        return given
    import importlib.util

    found = importlib.util.find_spec("timm")
    if found is None or found.origin is None:
        return None
    beside = Path(found.origin).parent.parent / "train.py"
    return beside if beside.is_file() else None


TIMM_RATE = re.compile(r"Train: .*\(\s*[\d.]+s,\s*([\d.]+)/s\)")


def run_timm(settings: Settings, data: Path, out: Path, train_py: Path, workers: int) -> Run:
    """timm's train.py as its users run it, `--dataset torch/fashion_mnist`, on the CPU."""
    size = str(settings.image_size)
    command = [sys.executable, str(train_py), "--dataset", "torch/fashion_mnist"]
    command += ["--input-size", "1", size, size, "--opt", "adamw"]
    command += _flags(
        data_dir=data,
        train_split="train",
        val_split="test",
        model=settings.model,
        num_classes=10,
        in_chans=1,
        crop_pct=1.0,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        warmup_epochs=0,
        workers=workers,
        device="cpu",
        seed=settings.seed,
        output=out,
        experiment="peers",
        checkpoint_hist=1,
    )
    process = measured(command, settings.threads, out / "timm.log")
    folder = out / "peers"
    with (folder / "summary.csv").open() as file:
        last = list(csv.DictReader(file))[-1]
    rates = TIMM_RATE.findall(process.log)
    images = _training_images(data)
    return Run(
        "timm train.py",
        seconds_to(process, folder, "*.pth.tar"),
        process.seconds,
        float(rates[-1]) if rates else float("nan"),
        float(last["eval_top1"]) / 100,
        process.peak_rss_mb,
        process.peak_pss_mb,
        images - images % settings.batch_size,  # drop_last
        f"{workers} DataLoader worker(s)",
    )


def _training_images(data: Path) -> int:
    """The training images in the prepared folder (its IDX header's count)."""
    header = (data / "FashionMNIST" / "raw" / IDX_FILES[0]).open("rb").read(8)
    return struct.unpack(">I", header[4:8])[0]


def run_seed(settings: Settings, data: Path, out: Path) -> Run:
    """The seed loop (`seed_loop` below), in its own process as a tutorial's script runs."""
    command = [sys.executable, str(Path(__file__).resolve()), SEED_LOOP]
    command += _flags(data_dir=data, out=out / "model.pth", **asdict(settings))
    process = measured(command, settings.threads, out / "seed.log")
    result = json.loads(process.log.splitlines()[-1])
    return Run(
        "seed loop",
        seconds_to(process, out, "model.pth"),
        process.seconds,
        result["images"] / result["train_seconds"],
        result["test_accuracy"],
        process.peak_rss_mb,
        process.peak_pss_mb,
        result["images"] // settings.epochs,
    )


# -- the seed loop itself ---------------------------------------------------------------------


def seed_model(name: str):
    """The tutorials' models: torchvision's ResNet18 with a 10-class `fc` (seed 000) and a
    one-channel `conv1` for grey images; or the LeNet of seed 001 (the lenet plugin's class)."""
    from torch import nn
    from torchvision import models

    if name == "lenet":
        from zoo.plugins.lenet import network

        return network()(10)
    model = models.resnet18()
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.fc = nn.Linear(model.fc.in_features, 10)
    return model


def check_accuracy(loader, model) -> float:
    """Seed 002's check_accuracy: eval mode, no_grad, the argmax against the labels."""
    import torch

    correct = samples = 0
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            samples += len(y)
    return correct / samples


def seed_loop(argv: list[str]) -> None:
    """The plain loop of the seed tutorials: torchvision's FashionMNIST through ToTensor, Resize
    and Normalize in a DataLoader, AdamW, cross entropy, `for x, y in loader`, then the state
    dict saved with torch.save and the test accuracy; prints one JSON line."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    parser = argparse.ArgumentParser(prog=f"bench_peers.py {SEED_LOOP}")
    for name, kind in Settings.__annotations__.items():  # the annotations' names
        kind = {"str": str, "int": int, "float": float}[kind]
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    mean, std = NORMALIZE[args.model]
    transform = transforms.Compose(
        [transforms.Resize(args.image_size), transforms.ToTensor(), transforms.Normalize(mean, std)]
    )
    train_set = datasets.FashionMNIST(args.data_dir, train=True, transform=transform)
    test_set = datasets.FashionMNIST(args.data_dir, train=False, transform=transform)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=args.batch_size)
    model = seed_model(args.model)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    began = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for x, y in train_loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - began
    torch.save(model.state_dict(), args.out)
    accuracy = check_accuracy(test_loader, model)
    images = len(train_set) * args.epochs
    print(json.dumps({"train_seconds": seconds, "images": images, "test_accuracy": accuracy}))


# -- the comparison ---------------------------------------------------------------------------


def median_run(runs: list[Run]) -> Run:
    """The median of each figure over a tool's repeats."""
    keys = ("seconds_to_weights", "seconds", "images_per_s", "test_accuracy", "peak_rss_mb")
    figures = {
        key: statistics.median(getattr(run, key) for run in runs) for key in (*keys, "peak_pss_mb")
    }
    return Run(runs[0].tool, **figures, train_images=runs[0].train_images)


def table(runs: list[Run]) -> str:
    """The medians as a Markdown table."""
    lines = [
        "| tool | to weights file | whole run | train images/s | test accuracy | peak RSS |"
        " peak PSS, with workers | training images |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        lines.append(
            f"| {run.tool} | {run.seconds_to_weights:.1f} s | {run.seconds:.1f} s | "
            f"{run.images_per_s:.0f} | {run.test_accuracy:.2%} | {run.peak_rss_mb:,.0f} MB | "
            f"{run.peak_pss_mb:,.0f} MB | {run.train_images:,} |"
        )
    return "\n".join(lines)


def ratios(ours: Run, peer: Run) -> str:
    """zoo against one peer: time and memory as zoo/peer (below 1: zoo less), speed as
    zoo/peer (above 1: zoo faster), accuracy as a difference."""
    return (
        f"zoo/{peer.tool.split()[0]}: time to weights "
        f"{ours.seconds_to_weights / peer.seconds_to_weights:.2f}x, "
        f"whole run {ours.seconds / peer.seconds:.2f}x, images/s "
        f"{ours.images_per_s / peer.images_per_s:.2f}x, peak RSS "
        f"{ours.peak_rss_mb / peer.peak_rss_mb:.2f}x, peak PSS with workers "
        f"{ours.peak_pss_mb / peer.peak_pss_mb:.2f}x, test accuracy "
        f"{(ours.test_accuracy - peer.test_accuracy) * 100:+.1f} points"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", choices=sorted(NORMALIZE))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW's, for all three")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW's [torch's]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="Train on the first N images [all 60,000].")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--timm-train", type=Path, help="timm's train.py [beside timm].")
    parser.add_argument("--timm-workers", type=int, default=1, help="its DataLoader workers")
    parser.add_argument("--without-timm", action="store_true", help="Compare zoo and seed only.")
    parser.add_argument("--json", type=Path, help="Also write every run and the medians here.")
    args = parser.parse_args(argv)
    args.timm_train = None if args.without_timm else timm_train_py(args.timm_train)
    if args.model in TIMM_BUILDS and not args.without_timm and args.timm_train is None:
        print(
            "note: timm's train.py is not beside the installed timm (its wheel and sdist do not "
            "ship it): comparing zoo and the seed loop only; --timm-train PATH adds timm",
            file=sys.stderr,
        )
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    settings = Settings(
        args.model,
        args.epochs,
        args.batch_size,
        args.lr,
        args.weight_decay,
        args.threads,
        args.image_size,
        args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        data = Path(tmp) / "data"
        images = prepare_data(data, args.limit)
        tools = {"zoo": lambda out: run_zoo(settings, data, out)}
        if args.timm_train is not None and args.model in TIMM_BUILDS:
            tools["timm"] = lambda out: run_timm(
                settings, data, out, args.timm_train, args.timm_workers
            )
        tools["seed"] = lambda out: run_seed(settings, data, out)
        print(
            f"{args.model} at {args.image_size} px, {images:,} training images, {args.epochs} "
            f"epoch(s), batch {args.batch_size}, AdamW {args.lr:g} (weight decay "
            f"{args.weight_decay:g}), {args.threads} thread(s); {', '.join(tools)}"
            + ("" if "timm" in tools else " (timm's train.py not run)"),
            flush=True,
        )
        runs: dict[str, list[Run]] = {name: [] for name in tools}
        for repeat in range(args.repeats):  # interleaved
            for name, run in tools.items():
                out = Path(tmp) / f"{name}-{repeat}"
                out.mkdir()
                runs[name].append(run(out))
                print(f"  {repeat + 1}/{args.repeats} {_line(runs[name][-1])}", flush=True)
    medians = [median_run(rows) for rows in runs.values()]
    print(f"\nmedians of {args.repeats} run(s):\n{table(medians)}\n")
    for peer in medians[1:]:
        print(ratios(medians[0], peer))
    if args.json:
        report = {"settings": asdict(settings), "limit": args.limit, "repeats": args.repeats}
        report |= {"runs": {k: [asdict(r) for r in v] for k, v in runs.items()}}
        report |= {"medians": [asdict(run) for run in medians]}
        args.json.write_text(json.dumps(report, indent=2))


def _line(run: Run) -> str:
    return (
        f"{run.tool:14} {run.seconds_to_weights:7.1f} s to weights ({run.seconds:.1f} s in all), "
        f"{run.images_per_s:6.0f} images/s, test {run.test_accuracy:6.2%}, peak "
        f"{run.peak_rss_mb:,.0f} MB (PSS with workers {run.peak_pss_mb:,.0f} MB)  {run.detail}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == [SEED_LOOP]:
        seed_loop(sys.argv[2:])
    else:
        main(sys.argv[1:])
