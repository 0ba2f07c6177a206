"""Test-split evaluation shared by `zoo train` and `zoo eval`: predictions, the confusion
matrix and per-class accuracy; for `zoo eval` also calibration, error analysis, figures and
the explanation method's deletion pass rate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.preprocess import prepare
from zoo.registry import Registry
from zoo.specs import InputSpec

EVAL_BATCH = 256
DELETION_IMAGES = 300


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


@torch.inference_mode()
def logits_of(module: nn.Module, batches) -> torch.Tensor:
    """The float logits of every input in `batches` (in order), on the CPU."""
    module.eval()
    return torch.cat([module(x).float().cpu() for x in batches])


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
    calibration: dict[str, float] = field(default_factory=dict)
    per_class_scores: list[dict[str, Any]] = field(default_factory=list)
    confused_pairs: list[dict[str, Any]] = field(default_factory=list)
    top_losses: list[dict[str, Any]] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    explain: dict[str, Any] | None = None


def evaluate_weights(
    registry: Registry,
    path: Path,
    dataset: str | None = None,
    root: str | None = None,
    download: bool = False,
    device: str = "auto",
    batch_size: int = EVAL_BATCH,
    figures_dir: Path | None = None,
    deletion: bool = False,
    method: str | None = None,
) -> Report:
    """Evaluate weights file `path` on the test split of `dataset` (default: the one it was
    trained on), whose classes must be the file's. With `figures_dir`, write the reliability
    diagram and the top-loss gallery there; with `deletion`, measure how often `method`'s
    maps (default: the file's) pass the deletion test."""
    from zoo import analysis
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
    logits = logits_of(classifier.model.to(where), batches)
    labels, predictions = data.test_labels, logits.argmax(1)
    confusion = confusion_matrix(labels, predictions, len(data.classes))
    temperature = classifier.temperature
    losses, worst = analysis.top_losses(logits / temperature, labels)
    explained = _deletion_rate(classifier, data.test_images, where, method) if deletion else None
    figures = []
    if figures_dir is not None:
        title = f"{Path(path).name} on {dataset}"
        figures = analysis.write_figures(
            figures_dir, data.test_images, labels, logits, temperature, data.classes, title, "eval-"
        )
    return Report(
        weights=str(path),
        dataset=dataset,
        classes=data.classes,
        images=len(labels),
        accuracy=(predictions == labels).float().mean().item(),
        per_class=per_class_accuracy(confusion),
        confusion=confusion.tolist(),
        calibration=analysis.calibration(logits, labels, temperature),
        per_class_scores=analysis.per_class_scores(confusion, data.classes),
        confused_pairs=analysis.confused_pairs(confusion, data.classes),
        top_losses=[
            {
                "index": int(i),
                "true": data.classes[labels[i]],
                "predicted": data.classes[predictions[i]],
                "confidence": float((logits[i] / temperature).softmax(0).max()),
                "loss": loss,
            }
            for i, loss in zip(worst.tolist(), losses.tolist(), strict=True)
        ],
        figures=[str(f) for f in figures],
        explain=explained,
    )


def _deletion_rate(classifier, images: torch.Tensor, device: torch.device, method: str | None):
    """How often `method`'s maps pass the deletion test on (up to 300 of) `images`."""
    from zoo.explain import deletion, explain

    rates, total = [], 0
    for batch in image_batches(images[:DELETION_IMAGES], classifier.input, device, 32):
        explanation = explain(classifier, batch, method)
        rates.append(deletion(classifier, batch, explanation.heatmaps).passed.sum().item())
        total += len(batch)
    return {"method": explanation.method, "pass_rate": sum(rates) / total, "images": total}


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" (+{len(names) - 5})" if len(names) > 5 else "")
