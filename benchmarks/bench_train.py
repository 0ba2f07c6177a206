"""`zoo train` against the seed tutorials' training loops, on the same digits data and epochs.

1. LeNet: zoo's loop (uint8 tensors in memory, batch-level preparation, its default recipe)
   against the tutorial loop: a torch Dataset whose samples go through torchvision transforms
   one by one in a DataLoader, batch 4, SGD lr 0.001 momentum 0.9. Compared: training images
   per second (the epochs' training phase) and test accuracy.
2. VGG16 `head`, 5 epochs on a 2,000-image subset (`--limit 2000`; digits has 1,438 training
   images, so all of them): zoo, which computes the frozen features once, against seed 002's
   loop, which runs the frozen backbone on every batch of every epoch (Adam lr 1e-3). Compared:
   wall time from data and model to a tested model, and test accuracy. Both start from the
   same weights; offline, those are random (no ImageNet download here), and with seed 002's
   batch of 1024 the head takes 10 steps and stays near chance, so both use --vgg-batch 64.
   zoo also runs with --amp (bf16 autocast), an option users choose.

Each measurement is repeated (--repeats, interleaved; repeat i uses seed i in both loops, so
the accuracies are medians over seeds) and the median is reported.

    python benchmarks/bench_train.py [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
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

from zoo.datasets import ImageSplits, load_dataset
from zoo.registry import get_registry
from zoo.runlog import read_metrics
from zoo.train import TrainConfig, train

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


def seed_lenet(registry, data: ImageSplits, epochs: int, seed: int) -> tuple[float, float]:
    """The PyTorch tutorial loop; returns (training images/s, test accuracy)."""
    spec = registry.model("lenet")
    torch.manual_seed(seed)
    model = registry.build(spec, num_classes=10)
    transform = tutorial_transform(32, 1, (0.5,), (0.5,))
    loader = DataLoader(
        TutorialDataset(data.train_images, data.train_labels, transform), 4, shuffle=True
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    seconds = 0.0
    for _ in range(epochs):
        model.train()
        began = time.perf_counter()
        for inputs, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - began
    return epochs * len(data.train_labels) / seconds, tutorial_accuracy(model, data, transform)


def zoo_run(registry, name: str, **settings) -> tuple[float, float, float]:
    """`zoo train NAME` as the CLI runs it (run folder, checkpoints, plots, weights file);
    returns (training images/s, wall seconds, test accuracy)."""
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
    images = sum(row["images_per_s"] * row["seconds"] for row in rows)
    return images / sum(row["seconds"] for row in rows), seconds, result.accuracy


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--vgg-batch", type=int, default=64, help="vgg16 head batch (both)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    registry = get_registry()
    _, digits = load_dataset(registry, "digits", 32)
    lenet_epochs = registry.model("lenet").defaults.epochs
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; digits: "
        f"{len(digits.train_labels)} train / {len(digits.test_labels)} test images"
    )

    seed, ours = [], []
    for i in range(args.repeats):
        seed.append(seed_lenet(registry, digits, lenet_epochs, i))
        ours.append(zoo_run(registry, "lenet", seed=i))
    seed_speed, ours_speed = median([s for s, _ in seed]), median([s for s, _, _ in ours])
    print(f"\nlenet, {lenet_epochs} epochs:")
    print(
        f"  seed loop (batch 4, per-sample transforms, SGD): {seed_speed:8.0f} images/s, "
        f"test accuracy {median([a for _, a in seed]):.2%}"
    )
    print(
        f"  zoo train lenet (its defaults):                   {ours_speed:8.0f} images/s, "
        f"test accuracy {median([a for _, _, a in ours]):.2%}"
    )
    print(f"  speed-up {ours_speed / seed_speed:.1f}x (target >= 10x; accuracy >= 98.5%)")

    seed, ours, bf16 = [], [], []
    batch = args.vgg_batch
    for i in range(args.repeats):
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
        f"{seed_time / bf16_time:.1f}x, {(bf16_acc - seed_acc) * 100:+.1f} points"
    )
    forwards = (5 * images + len(digits.test_labels)) / (images + len(digits.test_labels))
    print(f"  (the backbone runs {forwards:.1f}x as many images in the seed loop: the ceiling)")


if __name__ == "__main__":
    main()
