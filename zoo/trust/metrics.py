"""The metrics `zoo train` and `zoo eval` share: predicted labels, logits, the confusion
matrix and per-class accuracy, over prepared batches of uint8 images."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from zoo.data.preprocess import prepare
from zoo.specs import InputSpec

EVAL_BATCH = 256


def image_batches(
    images, spec: InputSpec, device: torch.device, batch_size: int = EVAL_BATCH
) -> Iterator[torch.Tensor]:
    """uint8 images (a tensor, or mapped from the cache) in order, as prepared model-input
    batches on `device`."""
    from zoo.data.stream import batches

    for _, x in batches(images, torch.arange(len(images)), batch_size, device):
        yield prepare(x, spec)


@torch.inference_mode()
def predicted_labels(module: nn.Module, batches, amp: bool = False) -> torch.Tensor:
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
