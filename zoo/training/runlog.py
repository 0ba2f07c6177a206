"""What a run leaves in runs/<run>/: metrics.jsonl, curves.png and test-confusion.png.

Each file is rewritten whole and atomically, so a crash leaves the previous complete version.
Figures use matplotlib's Agg canvas directly (no pyplot, no display, no global backend).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from zoo.util.figures import TWO_PANELS, save_png
from zoo.util.files import atomic_write

METRICS = "metrics.jsonl"
CURVES = "curves.png"
CONFUSION = "test-confusion.png"


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> Path:
    """One JSON line per epoch."""
    text = "".join(json.dumps(row) + "\n" for row in history)
    return atomic_write(run_dir / METRICS, lambda tmp: Path(tmp).write_text(text))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The epochs metrics.jsonl records."""
    return [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()]


def plot_curves(
    run_dir: Path, history: list[dict[str, Any]], title: str, best: int | None = None
) -> Path:
    """Training loss, and train and validation accuracy, per epoch; the `best` epoch marked."""
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    figure = Figure(figsize=(9, 3.6))
    loss, accuracy = figure.subplots(1, 2)
    figure.subplots_adjust(**TWO_PANELS)
    loss.plot(epochs, [row["loss"] for row in history], marker="o", label="train loss")
    loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    accuracy.plot(epochs, [row["train_accuracy"] for row in history], marker="o", label="train")
    validation = [row.get("val_accuracy") for row in history]
    if any(value is not None for value in validation):
        accuracy.plot(epochs, validation, marker="o", label="validation (held out)")
    if best is not None:
        accuracy.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
    accuracy.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.01))
    for axes in (loss, accuracy):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    return save_png(figure, run_dir / CURVES)


def plot_confusion(run_dir: Path, confusion: torch.Tensor, classes: list[str], title: str) -> Path:
    """The test split's confusion matrix, counts written in the cells of small matrices."""
    from matplotlib.figure import Figure

    n = len(classes)
    side = min(12.0, 2.5 + 0.45 * n)
    figure = Figure(figsize=(side, side), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(confusion.numpy(), cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
    if n <= 30:
        ticks = range(n)
        axes.set_xticks(ticks, classes, rotation=90)
        axes.set_yticks(ticks, classes)
        threshold = confusion.max().item() / 2
        for row, counts in enumerate(confusion.tolist()):
            for col, count in enumerate(counts):
                if count:
                    colour = "white" if count > threshold else "black"
                    axes.text(col, row, count, ha="center", va="center", color=colour, fontsize=8)
    axes.set(xlabel="predicted", ylabel="true", title=title)
    return save_png(figure, run_dir / CONFUSION)
