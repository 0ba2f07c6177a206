"""Where a model goes wrong and how sure it is, on a test split: per-class precision, recall and
F1, the most confused pairs, the highest-loss images, calibration before and after the
temperature; and their figures (a reliability diagram, a top-loss gallery) on matplotlib's Agg
canvas. Shared by `zoo train` (the run folder) and `zoo eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from zoo.data.stream import pixels
from zoo.trust import calibrate
from zoo.util.figures import DPI, TWO_PANELS, save_png

RELIABILITY = "test-reliability.png"
TOP_LOSSES = "test-top-losses.png"
FIGURES = (RELIABILITY, TOP_LOSSES)
GALLERY = 16  # images in the top-loss gallery
TILE = 140  # pixels each image of the gallery is drawn at
CELL = (160, 190, 40)  # pixels: a gallery cell's width and height, the title's band above
CAPTION = 34  # pixels of a cell's two caption lines, above its image
PAIRS = 10  # confused pairs listed


def per_class_scores(confusion: torch.Tensor, classes: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of each class (None where undefined)."""
    confusion = confusion.double()
    hits, predicted, actual = confusion.diag(), confusion.sum(0), confusion.sum(1)
    rows = []
    for i, name in enumerate(classes):
        precision = float(hits[i] / predicted[i]) if predicted[i] else None
        recall = float(hits[i] / actual[i]) if actual[i] else None
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and recall is not None and precision + recall
            else None
        )
        support = int(actual[i])
        rows.append(
            {"class": name, "precision": precision, "recall": recall, "f1": f1, "support": support}
        )
    return rows


def scores_by_class(confusion: torch.Tensor, classes: list[str]) -> dict[str, dict[str, Any]]:
    """`per_class_scores` by class name, as the weights file records them: precision, recall,
    F1 (None where undefined) and the number of test images."""
    return {
        row["class"]: {
            "precision": row["precision"],
            "recall": row["recall"],
            "f1": row["f1"],
            "images": row["support"],
        }
        for row in per_class_scores(confusion, classes)
    }


def confused_pairs(
    confusion: torch.Tensor, classes: list[str], k: int = PAIRS
) -> list[dict[str, Any]]:
    """The `k` most frequent (true, predicted) mistakes, with their counts."""
    off = confusion.clone()
    off.fill_diagonal_(0)
    counts, flat = off.flatten().topk(min(k, off.numel()))
    n = len(classes)
    return [
        {"true": classes[i // n], "predicted": classes[i % n], "count": int(c)}
        for c, i in zip(counts.tolist(), flat.tolist(), strict=True)
        if c
    ]


def calibration(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> dict[str, float]:
    """ECE (15 bins) and NLL of the plain and the temperature-scaled probabilities."""
    before, after = logits.softmax(1), (logits / temperature).softmax(1)
    return {
        "temperature": temperature,
        "ece_before": calibrate.ece(before, labels),
        "ece_after": calibrate.ece(after, labels),
        "nll_before": calibrate.nll(before, labels),
        "nll_after": calibrate.nll(after, labels),
    }


def top_losses(
    logits: torch.Tensor, labels: torch.Tensor, k: int = GALLERY
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` highest cross-entropies, highest first, and the indices of their images."""
    losses = F.cross_entropy(logits, labels, reduction="none")
    return losses.topk(min(k, len(losses)))


def plot_reliability(
    path: Path, logits: torch.Tensor, labels: torch.Tensor, temperature: float, title: str
) -> Path:
    """Accuracy against confidence per bin, before and after the temperature."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4.2))
    figure.subplots_adjust(**TWO_PANELS)
    edges = torch.linspace(0, 1, calibrate.BINS + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1 / calibrate.BINS
    for axes, t, name in zip(
        figure.subplots(1, 2), (1.0, temperature), ("before", "after"), strict=True
    ):
        probabilities = (logits / t).softmax(1)
        counts, _, accuracy = calibrate.reliability(probabilities, labels)
        shown = counts > 0
        axes.bar(centres[shown], accuracy[shown], width=width, edgecolor="black", label="accuracy")
        axes.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ece = calibrate.ece(probabilities, labels)
        axes.set(
            xlabel="confidence",
            ylabel="accuracy",
            xlim=(0, 1),
            ylim=(0, 1),
            title=f"{name}: T = {t:.2f}, ECE {ece:.3f}",
        )
        axes.legend(loc="upper left")
    figure.suptitle(title)
    return save_png(figure, path)


def plot_top_losses(
    path: Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    probabilities: torch.Tensor,
    classes: list[str],
    title: str,
) -> Path:
    """The given uint8 (N, C, H, W) images with true label, prediction and its confidence,
    each scaled to `TILE` pixels and placed on the figure as it is: no axes to lay out or draw
    (16 of them took 0.3 s)."""
    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image

    n = len(images)
    columns = min(8, max(n, 1))
    rows = max(1, -(-n // columns))
    width, height = columns * CELL[0], rows * CELL[1] + CELL[2]
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    for i in range(n):
        row, column = divmod(i, columns)
        picture = Image.fromarray(images[i].permute(1, 2, 0).squeeze(2).numpy()).convert("RGB")
        scale = TILE / max(picture.size)
        shown = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        sharp = Image.NEAREST if scale >= 1 else Image.BILINEAR  # small images stay pixelated
        tile = np.asarray(picture.resize(shown, sharp))
        top = height - CELL[2] - row * CELL[1]  # the cell's top edge, in pixels from the bottom
        left = column * CELL[0]
        figure.figimage(tile, left + (CELL[0] - shown[0]) // 2, top - CAPTION - shown[1])
        confidence, predicted = probabilities[i].max(0)
        figure.text(
            (left + CELL[0] / 2) / width,
            (top - 2) / height,
            f"true {classes[labels[i]]}\npred {classes[predicted]} {confidence:.0%}",
            ha="center",
            va="top",
            fontsize=8,
        )
    figure.suptitle(title)
    return save_png(figure, path)


def write_figures(
    folder: Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    logits: torch.Tensor,
    temperature: float,
    classes: list[str],
    title: str,
    prefix: str = "",
) -> list[Path]:
    """The reliability diagram and the top-loss gallery of a test split, in `folder`."""
    _, worst = top_losses(logits / temperature, labels)
    probabilities = (logits[worst] / temperature).softmax(1)
    return [
        plot_reliability(folder / f"{prefix}{RELIABILITY}", logits, labels, temperature, title),
        plot_top_losses(
            folder / f"{prefix}{TOP_LOSSES}",
            pixels(images[worst]),
            labels[worst],
            probabilities,
            classes,
            f"{title}: highest-loss test images",
        ),
    ]
