"""Test-split evaluation shared by `zoo train` and `zoo eval`: predictions, the confusion
matrix and per-class accuracy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.preprocess import prepare
from zoo.registry import Registry
from zoo.specs import InputSpec

EVAL_BATCH = 256


def image_batches(
    images, spec: InputSpec, device: torch.device, batch_size: int = EVAL_BATCH
) -> Iterator[torch.Tensor]:
    """uint8 images (a tensor, or mapped from the cache) in order, as prepared model-input
    batches on `device`."""
    from zoo.datasets.stream import batches

    for _, x in batches(images, torch.arange(len(images)), batch_size, device):
        yield prepare(x, spec)


@torch.inference_mode()
def predict(module: nn.Module, batches, amp: bool = False) -> torch.Tensor:
    """The predicted class of every input in `batches` (in order), on the CPU."""
    module.eval()
    predictions = []
    for x in batches:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            predictions.append(module(x).argmax(1).cpu())
    return torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) counts: row = true class, column = predicted class."""
    flat = labels.long() * classes + predictions.long()
    return torch.bincount(flat, minlength=classes * classes).view(classes, classes)


def per_class_accuracy(confusion: torch.Tensor) -> list[float | None]:
    """Recall of each class (None for a class with no test images)."""
    totals = confusion.sum(1)
    return [
        float(confusion[i, i] / totals[i]) if totals[i] else None for i in range(len(confusion))
    ]


@dataclass
class Report:
    """How a weights file does on a dataset's test split."""

    weights: str
    dataset: str
    classes: list[str]
    images: int
    accuracy: float
    per_class: list[float | None]
    confusion: list[list[int]]


def evaluate_weights(
    registry: Registry,
    path: Path,
    dataset: str | None = None,
    root: str | None = None,
    download: bool = False,
    device: str = "auto",
    batch_size: int = EVAL_BATCH,
) -> Report:
    """Evaluate weights file `path` on the test split of `dataset` (default: the one it was
    trained on), whose classes must be the file's."""
    from zoo.datasets import load_dataset
    from zoo.distributed import pick_device
    from zoo.inference import Classifier

    classifier = Classifier.load(registry, path)
    dataset = dataset or classifier.meta.get("dataset")
    if not dataset or dataset == "imagenet":
        raise ZooError(f"{path} names no dataset zoo can load; pass --dataset")
    _, data = load_dataset(registry, dataset, classifier.input.size, root, download)
    if data.classes != classifier.classes:
        raise ZooError(
            f"{path} knows classes {_few(classifier.classes)} but {dataset} has "
            f"{_few(data.classes)}"
        )
    where = pick_device(device)
    batches = image_batches(data.test_images, classifier.input, where, batch_size)
    predictions = predict(classifier.model.to(where), batches)
    confusion = confusion_matrix(data.test_labels, predictions, len(data.classes))
    return Report(
        weights=str(path),
        dataset=dataset,
        classes=data.classes,
        images=len(data.test_labels),
        accuracy=(predictions == data.test_labels).float().mean().item(),
        per_class=per_class_accuracy(confusion),
        confusion=confusion.tolist(),
    )


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" (+{len(names) - 5})" if len(names) > 5 else "")
