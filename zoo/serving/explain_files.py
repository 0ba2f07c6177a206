"""`zoo explain`: where the model looked, for image files, a batch at a time.

Each image's heat map comes from `zoo.trust.explain` and is checked by the deletion test; a PNG
shows the image beside the model's view with the heat overlaid.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from zoo.data.preprocess import open_image, view
from zoo.errors import ZooError
from zoo.serving.inference import Classifier
from zoo.trust.explain import METHODS, deletion, explain, overlay
from zoo.util.figures import save_png


@dataclass
class Explained:
    """One image's explanation: its top classes, the method, the heat map, the deletion score
    (lower is better) against a random order's, and the PNG written."""

    top: dict[str, float]
    unknown: bool
    method: str
    heatmap: torch.Tensor
    score: float
    random: float
    png: Path

    @property
    def passed(self) -> bool:
        return self.score < self.random


def explain_files(
    classifier: Classifier,
    files: list[Path],
    folder: Path,
    method: str | None = None,
    top_k: int = 3,
    batch_size: int = 32,
) -> Iterator[tuple[Path, Explained | ZooError]]:
    """Each file with its `Explained` (a PNG in `folder`, named after it), or the error that
    made it unreadable or its answer not finite (as `zoo predict` answers it)."""
    if method is not None and method not in METHODS:
        raise ZooError(f"unknown explanation method {method!r}; choose from {', '.join(METHODS)}")
    names: set[str] = set()
    for start in range(0, len(files), batch_size):
        decoded = []
        for path in files[start : start + batch_size]:
            try:
                decoded.append((path, open_image(path)))
            except ZooError as error:
                yield path, error
        if not decoded:
            continue
        batch = classifier.inputs([classifier.to_uint8(image) for _, image in decoded])
        predictions = classifier.predict_batch(batch)
        explanation = explain(classifier, batch, method)
        scores = deletion(classifier, batch, explanation.heatmaps)
        for i, (path, image) in enumerate(decoded):
            if not bool(predictions.probabilities[i].isfinite().all()):  # overflowing logits
                yield path, ZooError(f"{path}: the model's answer is not a finite number")
                continue
            top = classifier.top(predictions.probabilities[i], top_k)
            label, probability = next(iter(top.items()))
            result = Explained(
                top,
                bool(predictions.unknown[i]),
                explanation.method,
                explanation.heatmaps[i],
                float(scores.scores[i]),
                float(scores.random[i]),
                folder / _unique(names, path.stem),
            )
            unlike = ", unknown (unlike the training data)" if result.unknown else ""
            caption = (
                f"{path.name}: {label} {probability:.1%}{unlike} ({result.method}); deletion "
                f"{result.score:.3f} vs random {result.random:.3f}: "
                f"{'passes' if result.passed else 'fails'}"
            )
            save_explanation(
                result.png, image, view(batch[i], classifier.input), result.heatmap, caption
            )
            yield path, result


def save_explanation(
    path: Path, image: Image.Image, seen: Image.Image, heatmap: torch.Tensor, caption: str
) -> Path:
    """A PNG of the image as given beside the model's view with the heat overlaid."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.8), layout="constrained")
    given, looked = figure.subplots(1, 2)
    given.imshow(image.convert("RGB"))
    given.set_title("image", fontsize=9)
    looked.imshow(overlay(seen, heatmap).resize((224, 224), Image.Resampling.NEAREST))
    looked.set_title("the model's view and where it looked", fontsize=9)
    for axes in (given, looked):
        axes.axis("off")
    figure.suptitle(caption, fontsize=9)
    return save_png(figure, path)


def _unique(names: set[str], stem: str) -> str:
    """`stem.png`, or `stem-2.png`, ... if an earlier image of this run took that name."""
    name, n = f"{stem}.png", 1
    while name in names:
        n += 1
        name = f"{stem}-{n}.png"
    names.add(name)
    return name
