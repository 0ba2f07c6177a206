"""The Classify tab's example images, all real: one digit per class from the digits test split
and scikit-learn's two sample photographs, written as image files to a cache folder once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.registry import Registry
from zoo.util.files import atomic_write


def default_folder() -> Path:
    """$XDG_CACHE_HOME/zoo/demo-examples (~/.cache/zoo/demo-examples)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "zoo" / "demo-examples"


@dataclass(frozen=True)
class Example:
    """An example image file, its caption, and its group ("digits" or "photos")."""

    path: Path
    label: str
    group: str


def write_examples(registry: Registry, folder: Path) -> list[Example]:
    """The example files, written to `folder` where missing: digits first, then the photos."""
    from sklearn.datasets import load_sample_images

    images: list[tuple[str, str, str, np.ndarray]] = []
    digits = registry.dataset("digits")[0].load(root=None, download=False)
    for label, name in enumerate(digits.classes):
        first = int((digits.test_labels == label).nonzero()[0, 0])
        images.append(
            (f"digit-{name}.png", f"digit {name}", "digits", digits.test_images[first, 0].numpy())
        )
    photos = load_sample_images()
    for path, photo in zip(photos.filenames, photos.images, strict=True):
        stem = Path(path).stem
        images.append((f"{stem}.png", f"photo: {stem}", "photos", photo))
    examples = []
    for name, label, group, array in images:
        path = folder / name
        if not path.is_file():
            atomic_write(path, lambda tmp, a=array: Image.fromarray(a).save(tmp, format="PNG"))
        examples.append(Example(path, label, group))
    return examples
