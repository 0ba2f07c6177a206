"""`zoo train` against the seed tutorials' training loops, on the same data.

1. LeNet, time to accuracy: the training seconds (each epoch's training phase, evaluation
   excluded) until the test accuracy first reaches 98.5% on digits (87% on Fashion-MNIST, with
   `--lenet-dataset fashion-mnist`: Debian's real 70,000 images), for the tutorial loop (a torch
   Dataset whose samples go through torchvision transforms one by one in a DataLoader, batch 4,
   SGD lr 0.001 momentum 0.9, --seed-epochs epochs, at the thread count fastest for it, tested
   after every epoch) and for `zoo train lenet` with its defaults (which choose their own
   thread count; `--lenet-threads N` fixes both sides' instead; zoo touches the test split
   once, so its time is that of the shortest `--epochs N` run that reaches 98.5%). Also: each
   side's final accuracy, and training images/s at equal thread counts.
2. VGG16 `head`, 5 epochs on a 2,000-image subset (`--limit 2000`; digits has 1,438 training
   images, so all of them): zoo, which computes the frozen features once, against seed 002's
   loop, which runs the frozen backbone on every batch of every epoch (Adam lr 1e-3). Compared:
   wall time from data and model to a tested model, and test accuracy. Both start from the
   same weights; offline, those are random (no ImageNet download here), and with seed 002's
   batch of 1024 the head takes 10 steps and stays near chance, so both use --vgg-batch 64.
   zoo also runs with --amp (bf16 autocast), an option users choose.

Each measurement is repeated (--repeats, interleaved; repeat i uses seed i on both sides, so
the accuracies are medians over seeds) and the median is reported.

    python benchmarks/bench_train.py [--repeats 3] [--only lenet|vgg16]
    python benchmarks/bench_train.py --only lenet --lenet-dataset fashion-mnist --seed-epochs 3 \
        [--lenet-threads 2]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from zoo.data.sources import load_dataset
from zoo.data.splits import ImageSplits
from zoo.registry import get_registry
from zoo.training.config import TrainConfig
from zoo.training.loop import train
from zoo.training.runlog import read_metrics
from zoo.util import threads

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class TutorialDataset(Dataset):
    """The tutorials' way: one PIL image at a time through a transform pipeline."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), int(self.labels[i])


def tutorial_transform(size: int, channels: int, mean, std):
    steps = [transforms.ToPILImage(), transforms.Resize(size)]
    if channels == 3:
        steps.append(transforms.Grayscale(3))
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(mean, std)])


def tutorial_accuracy(model: nn.Module, data: ImageSplits, transform) -> float:
    """check_accuracy of the tutorials: eval mode, no_grad, argmax over a DataLoader."""
    loader = DataLoader(TutorialDataset(data.test_images, data.test_labels, transform), 256)
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return correct / len(data.test_labels)


# Per dataset: the test accuracy whose time is compared, and the one the final model must reach.
TARGETS = {"digits": (0.985, 0.994), "fashion-mnist": (0.87, 0.92)}


def time_to(rows: list[dict], target: float) -> float:
    """The seed loop's training seconds until the first epoch whose test accuracy reaches
    `target` (inf if none does); `rows` are per-epoch {"seconds", "accuracy"}."""
    seconds = 0.0
    for row in rows:
        seconds += row["seconds"]
        if row["accuracy"] >= target:
            return seconds
    return math.inf


def seed_lenet(registry, data: ImageSplits, epochs: int, seed: int) -> list[dict]:
    """The PyTorch tutorial loop, tested after every epoch: per-epoch rows of training
    seconds, images and test accuracy."""
    spec = registry.model("lenet")
    torch.manual_seed(seed)
    model = registry.build(spec, num_classes=10)
    transform = tutorial_transform(32, 1, (0.5,), (0.5,))
    loader = DataLoader(
        TutorialDataset(data.train_images, data.train_labels, transform), 4, shuffle=True
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    rows = []
    for _ in range(epochs):
        model.train()
        began = time.perf_counter()
        for inputs, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - began
        accuracy = tutorial_accuracy(model, data, transform)
        rows.append({"seconds": seconds, "images": len(data.train_labels), "accuracy": accuracy})
    return rows


def seed_threads(registry) -> int:
    """The thread count at which the tutorial's step (batch 4) runs fastest, measured as zoo
    measures its own."""
    model = registry.build(registry.model("lenet"), num_classes=10)
    return threads.choose(model, torch.zeros(4, 1, 32, 32), train=True)


def zoo_time_to(
    registry, dataset: str, seed: int, most: int, target: float, threads: int | None
) -> float:
    """zoo tests once, at the end: its time to `target` is the training seconds of the
    shortest `zoo train lenet --epochs N` (N up to `most`) whose test accuracy reaches it, as a
    user would choose N (inf if none does)."""
    for epochs in range(1, most + 1):
        rows, _, accuracy = zoo_run(
            registry, "lenet", dataset=dataset, seed=seed, epochs=epochs, threads=threads
        )
        if accuracy >= target:
            return sum(row["seconds"] for row in rows)
    return math.inf


def zoo_run(registry, name: str, **settings) -> tuple[list[dict], float, float]:
    """`zoo train NAME` as the CLI runs it (run folder, checkpoints, plots, weights file);
    returns (its per-epoch metrics, wall seconds, final test accuracy)."""
    spec = registry.model(name)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "head on a random backbone": known, offline
        config = TrainConfig.for_model(spec, **settings)
        began = time.perf_counter()
        result = train(
            registry, spec, config, Path(tmp) / "w.safetensors", Path(tmp) / "run", progress=False
        )
        seconds = time.perf_counter() - began
        rows = read_metrics(Path(tmp) / "run")
    return rows, seconds, result.accuracy


def images_per_s(rows: list[dict]) -> float:
    """Training images per second over a run's epochs."""
    images = sum(row.get("images") or row["images_per_s"] * row["seconds"] for row in rows)
    return images / sum(row["seconds"] for row in rows)


def seed_vgg16_head(
    registry, data: ImageSplits, epochs: int, batch: int, seed: int
) -> tuple[float, float]:
    """Seed 002's loop: frozen VGG16 features recomputed for every batch of every epoch;
    returns (wall seconds, test accuracy)."""
    began = time.perf_counter()
    spec = registry.model("vgg16")
    torch.manual_seed(seed)
    model = registry.build(spec, num_classes=10)  # vgg16() with seed 002's avgpool and head
    for param in model.features.parameters():
        param.requires_grad = False
    transform = tutorial_transform(32, 3, *IMAGENET)
    loader = DataLoader(
        TutorialDataset(data.train_images, data.train_labels, transform), batch, shuffle=True
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for inputs, targets in loader:
            loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    accuracy = tutorial_accuracy(model, data, transform)
    return time.perf_counter() - began, accuracy


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_lenet(registry, dataset: str, repeats: int, seed_epochs: int, fixed: int | None) -> None:
    """LeNet's time to accuracy; `fixed`: both sides' thread count, or each its fastest."""
    _, data = load_dataset(registry, dataset, 32)
    target, final = TARGETS[dataset]
    best = fixed or seed_threads(registry)
    spec = registry.model("lenet")
    defaults = TrainConfig.for_model(spec, dataset=dataset)  # with the recipe for the dataset
    seed, ours, ours_ttas = [], [], []
    for i in range(repeats):  # interleaved
        torch.set_num_threads(best)
        seed.append(seed_lenet(registry, data, seed_epochs, i))
        rows, _, accuracy = zoo_run(registry, "lenet", dataset=dataset, seed=i, threads=fixed)
        ours.append((rows, accuracy))
        ours_ttas.append(zoo_time_to(registry, dataset, i, defaults.epochs, target, fixed))
    zoo_threads = statistics.mode(row["threads"] for rows, _ in ours for row in rows)
    seed_ttas = [time_to(r, target) for r in seed]
    seed_tta, ours_tta = median(seed_ttas), median(ours_ttas)
    seed_total = median([sum(row["seconds"] for row in r) for r in seed])
    seed_final = median([r[-1]["accuracy"] for r in seed])
    ours_final = [accuracy for _, accuracy in ours]
    seed_speed, ours_speed = (
        median([images_per_s(r) for r in seed]),
        median([images_per_s(rows) for rows, _ in ours]),
    )
    print(
        f"\nlenet on {dataset} ({len(data.train_labels)} train / {len(data.test_labels)} test), "
        f"time to {target:.1%} test accuracy (training seconds, evaluation excluded):"
    )
    print(
        f"  seed loop (batch 4, per-sample transforms, SGD), {best} thread(s), {seed_epochs} "
        f"epochs: {_seconds(seed_tta, seed_total)}, final {seed_final:.2%}, "
        f"{seed_speed:6.0f} images/s; per seed: {_listed(seed_ttas)}"
    )
    print(
        f"  zoo train lenet (batch {defaults.batch_size}, {defaults.epochs} epochs, "
        f"{defaults.optimizer} {defaults.lr:g} {defaults.schedule}), {zoo_threads} thread(s): "
        f"{ours_tta:.2f} s, final {median(ours_final):.2%} (lowest {min(ours_final):.2%}), "
        f"{ours_speed:6.0f} images/s; per seed: {_listed(ours_ttas)}"
    )
    bound = ">= " if math.isinf(seed_tta) else ""
    ratio = (seed_total if math.isinf(seed_tta) else seed_tta) / ours_tta
    print(
        f"  time to {target:.1%}: {bound}{ratio:.1f}x sooner (target >= 10x, final >= "
        f"{final:.1%}); images/s {ours_speed / seed_speed:.1f}x"
        + ("" if best == zoo_threads else f" (threads differ: {best} vs {zoo_threads})")
    )


def _seconds(tta: float, total: float) -> str:
    return f"not reached in {total:.1f} s" if math.isinf(tta) else f"{tta:.2f} s"


def _listed(values: list[float]) -> str:
    return ", ".join("never" if math.isinf(v) else f"{v:.2f} s" for v in values)


def bench_vgg16(registry, digits: ImageSplits, repeats: int, batch: int) -> None:
    seed, ours, bf16 = [], [], []
    for i in range(repeats):
        seed.append(seed_vgg16_head(registry, digits, 5, batch, i))
        settings = {"epochs": 5, "limit": 2000, "batch_size": batch, "seed": i}
        ours.append(zoo_run(registry, "vgg16", **settings))
        bf16.append(zoo_run(registry, "vgg16", amp=True, **settings))
    seed_time, ours_time = median([s for s, _ in seed]), median([s for _, s, _ in ours])
    seed_acc, ours_acc = median([a for _, a in seed]), median([a for _, _, a in ours])
    bf16_time, bf16_acc = median([s for _, s, _ in bf16]), median([a for _, _, a in bf16])
    images = len(digits.train_labels)
    print(f"\nvgg16 head, 5 epochs, --limit 2000 ({images} images), batch {batch}, Adam 1e-3:")
    print(f"  seed 002 loop (features every epoch): {seed_time:6.1f} s, accuracy {seed_acc:.2%}")
    print(f"  zoo train vgg16 (cached features):    {ours_time:6.1f} s, accuracy {ours_acc:.2%}")
    print(f"  zoo train vgg16 --amp (bf16):         {bf16_time:6.1f} s, accuracy {bf16_acc:.2%}")
    print(
        f"  speed-up {seed_time / ours_time:.1f}x (target >= 4x), accuracy difference "
        f"{(ours_acc - seed_acc) * 100:+.1f} points (target within 1); with --amp "
        f"{seed_time / bf16_time:.1f}x (target >= 6x), {(bf16_acc - seed_acc) * 100:+.1f} points"
    )
    forwards = (5 * images + len(digits.test_labels)) / (images + len(digits.test_labels))
    print(f"  (the backbone runs {forwards:.1f}x as many images in the seed loop: the ceiling)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed-epochs", type=int, default=30, help="the LeNet seed loop's")
    parser.add_argument("--vgg-batch", type=int, default=64, help="vgg16 head batch (both)")
    parser.add_argument("--only", choices=("lenet", "vgg16"))
    parser.add_argument("--lenet-dataset", choices=tuple(TARGETS), default="digits")
    parser.add_argument("--lenet-threads", type=int, help="both LeNet sides' [each its fastest]")
    args = parser.parse_args()
    if args.only == "vgg16" and (args.lenet_dataset != "digits" or args.lenet_threads):
        parser.error("--lenet-dataset and --lenet-threads are for the LeNet part")
    if args.lenet_threads is not None and args.lenet_threads < 1:
        parser.error("--lenet-threads must be at least 1")
    registry = get_registry()
    print(f"torch {torch.__version__}, CPU with {threads.cores()} cores")
    if args.only != "vgg16":
        bench_lenet(
            registry, args.lenet_dataset, args.repeats, args.seed_epochs, args.lenet_threads
        )
    if args.only != "lenet":
        _, digits = load_dataset(registry, "digits", 32)
        bench_vgg16(registry, digits, args.repeats, args.vgg_batch)


if __name__ == "__main__":
    main()
