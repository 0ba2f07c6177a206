"""`zoo eval`: how a weights file does on a test split: accuracy, calibration, per-class
scores, confusions, the top losses and their figures, and the explanation method's deletion
pass rate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.trust.metrics import (
    EVAL_BATCH,
    confusion_matrix,
    image_batches,
    logits_of,
    per_class_accuracy,
)

DELETION_IMAGES = 300


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
    source: str = ""


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
    trained on, from the data folder its weights file records unless `root` is given), whose
    classes must be the file's. With `figures_dir`, write the reliability
    diagram and the top-loss gallery there; with `deletion`, measure how often `method`'s
    maps (default: the file's) pass the deletion test."""
    from zoo.data.sources import load_dataset
    from zoo.serving.inference import Classifier
    from zoo.training.distributed import pick_device
    from zoo.trust import analysis

    classifier = Classifier.load(registry, path)
    recorded = classifier.meta.get("data") or {}
    given = dataset
    if given is None:
        dataset = recorded.get("dataset") or classifier.meta.get("dataset")
        root = root or recorded.get("data_dir")
    if not dataset or dataset == "imagenet":
        raise ZooError(f"{path} names no dataset zoo can load; pass --dataset")
    _, data = load_dataset(registry, dataset, classifier.input.size, root, download)
    source = f"{dataset} from {data.source}"
    if given is None:
        source += " (the dataset recorded in the weights file)"
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
        source=source,
    )


def _deletion_rate(classifier, images: torch.Tensor, device: torch.device, method: str | None):
    """How often `method`'s maps pass the deletion test on (up to 300 of) `images`."""
    from zoo.trust.explain import deletion, explain

    rates, total = [], 0
    for batch in image_batches(images[:DELETION_IMAGES], classifier.input, device, 32):
        explanation = explain(classifier, batch, method)
        rates.append(deletion(classifier, batch, explanation.heatmaps).passed.sum().item())
        total += len(batch)
    return {"method": explanation.method, "pass_rate": sum(rates) / total, "images": total}


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" (+{len(names) - 5})" if len(names) > 5 else "")
