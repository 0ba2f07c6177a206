"""Benchmark: `zoo predict` images/s against a plain torchvision eval loop, over the same files.

    python benchmarks/bench_predict.py [--images 200] [--repeats 3]

Writes real images (scikit-learn's digits and crops of its two sample photos, resized) as PNGs
to a temporary folder, saves untrained LeNet and ResNet18 weights (speed does not depend on the
weights' values), then times, for each model, on the CPU:

- zoo: what `zoo predict` runs after loading the weights (find the files, decode on a thread pool,
  batched forward under inference_mode in channels_last, top-5);
- torchvision, batch 1: PIL open, torchvision transforms per image, model in eval mode, one
  image per forward under no_grad, top-5;
- torchvision, DataLoader: the same transforms in a Dataset, DataLoader(batch_size=32,
  num_workers=2);
- forward only: the same model (`Classifier.model`, channels_last) on ready input batches of 32,
  under inference_mode, with and without bf16 autocast: the ceiling of `zoo predict`, which
  should reach 60% of it (decoding overlaps the forwards).

Each figure is the median of the repeats; the ratios are zoo's images/s over the baseline's.
All runs use the thread count `zoo predict` chooses for the model.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from zoo import weights
from zoo.registry import get_registry
from zoo.serving.inference import Classifier
from zoo.serving.predict import find_images, predict_files
from zoo.specs import InputSpec
from zoo.util import threads

BATCH = 32


def write_images(folder: Path, count: int) -> list[Path]:
    """`count` PNGs: three quarters digits (8x8), the rest crops of the two sample photos."""
    rng = np.random.default_rng(0)
    digits = load_digits().images
    photos = load_sample_images().images
    n_photos = count // 4
    for i in range(count - n_photos):
        pixels = (digits[i] * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"digit-{i:04d}.png")
    for i in range(n_photos):
        photo = photos[i % len(photos)]
        top, left = rng.integers(0, 100), rng.integers(0, 200)
        crop = Image.fromarray(photo[top : top + 320, left : left + 400])
        crop.resize((int(rng.integers(200, 400)), int(rng.integers(200, 400)))).save(
            folder / f"photo-{i:04d}.png"
        )
    return sorted(folder.glob("*.png"))


def baseline_transform(spec: InputSpec) -> Callable:
    """The usual torchvision preprocessing for a model's input spec."""
    mode = "L" if spec.channels == 1 else "RGB"
    return transforms.Compose(
        [
            transforms.Lambda(lambda image: image.convert(mode)),
            transforms.Resize(spec.size),
            transforms.CenterCrop(spec.size),
            transforms.ToTensor(),
            transforms.Normalize(spec.mean, spec.std),
        ]
    )


class Files(Dataset):
    def __init__(self, files: list[Path], transform: Callable) -> None:
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.files[i]) as image:
            return self.transform(image)


def run_zoo(classifier: Classifier, folder: Path, amp: bool = False) -> int:
    files = find_images([folder])
    return sum(1 for _ in predict_files(classifier, files, k=5, batch_size=BATCH, amp=amp))


@torch.inference_mode()
def run_forward(model: torch.nn.Module, batch: torch.Tensor, images: int, amp: bool) -> int:
    """The model alone on ready batches: `images` images in batches like `batch`."""
    for _ in range(0, images, len(batch)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            model(batch).float().softmax(1).topk(5)
    return images


@torch.no_grad()
def run_batch1(model: torch.nn.Module, files: list[Path], transform: Callable) -> int:
    for path in files:
        with Image.open(path) as image:
            x = transform(image)
        model(x[None]).softmax(1).topk(5)
    return len(files)


@torch.no_grad()
def run_dataloader(model: torch.nn.Module, files: list[Path], transform: Callable) -> int:
    loader = DataLoader(Files(files, transform), batch_size=BATCH, num_workers=2)
    for x in loader:
        model(x).softmax(1).topk(5)
    return len(files)


def images_per_second(runs: dict[str, Callable[[], int]], repeats: int) -> dict[str, float]:
    """The median images/s of each run; the runs take turns, so a busy moment hits them all."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            count = run()
            rates[name].append(count / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["lenet", "resnet18"])
    args = parser.parse_args()

    registry = get_registry()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        files = write_images(folder, args.images)
        n = len(files)
        print(f"{len(files)} images, median of {args.repeats}; images/s (zoo / baseline)")
        for name in args.models:
            spec = registry.model(name)
            path = Path(tmp) / f"{name}.safetensors"
            meta = {"model": name, "classes": list("0123456789"), "input": spec.input.to_dict()}
            weights.save(path, registry.build(spec, num_classes=10), meta)
            classifier = Classifier.load(registry, path)
            batch = threads.example(spec.input, BATCH)
            count = threads.use(None, classifier.model, batch, train=False)
            model = registry.build(spec, num_classes=10).eval()
            transform = baseline_transform(spec.input)
            rates = images_per_second(
                {
                    "zoo": lambda c=classifier: run_zoo(c, folder),
                    "zoo_amp": lambda c=classifier: run_zoo(c, folder, amp=True),
                    "forward": lambda c=classifier, b=batch: run_forward(c.model, b, n, False),
                    "forward_amp": lambda c=classifier, b=batch: run_forward(c.model, b, n, True),
                    "batch1": lambda m=model, t=transform: run_batch1(m, files, t),
                    "loader": lambda m=model, t=transform: run_dataloader(m, files, t),
                },
                args.repeats,
            )
            zoo_rate, batch1, loader = rates["zoo"], rates["batch1"], rates["loader"]
            print(
                f"{name:<9} ({count} threads) zoo predict {zoo_rate:7.1f}   torchvision batch 1 "
                f"{batch1:7.1f} ({zoo_rate / batch1:.2f}x)   torchvision DataLoader "
                f"{loader:7.1f} ({zoo_rate / loader:.2f}x)"
            )
            for suffix, label in (("", "fp32"), ("_amp", "--amp")):
                ours, ceiling = rates[f"zoo{suffix}"], rates[f"forward{suffix}"]
                print(
                    f"          {label:<5} zoo predict {ours:7.1f} of forward only {ceiling:7.1f}: "
                    f"{ours / ceiling:.0%} (target >= 60%)"
                )


if __name__ == "__main__":
    main()
