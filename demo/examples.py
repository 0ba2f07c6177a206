"""The Classify tab's example images, all real: one digit per class from the digits test split
and scikit-learn's two sample photographs, written as image files to a cache folder once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.registry import Registry
from zoo.weights import atomic_write


def default_folder() -> Path:
    """$XDG_CACHE_HOME/zoo/demo-examples (~/.cache/zoo/demo-examples)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "zoo" / "demo-examples"


def write_examples(registry: Registry, folder: Path) -> list[Path]:
    """The example files, written to `folder` where missing: digits first, then the photos."""
    from sklearn.datasets import load_sample_images

    images: dict[str, np.ndarray] = {}
    digits = registry.dataset("digits")[0].load(root=None, download=False)
    for label, name in enumerate(digits.classes):
        first = int((digits.test_labels == label).nonzero()[0, 0])
        images[f"digit-{name}.png"] = digits.test_images[first, 0].numpy()
    photos = load_sample_images()
    for path, photo in zip(photos.filenames, photos.images, strict=True):
        images[f"{Path(path).stem}.png"] = photo
    paths = []
    for name, array in images.items():
        path = folder / name
        if not path.is_file():
            atomic_write(path, lambda tmp, a=array: Image.fromarray(a).save(tmp, format="PNG"))
        paths.append(path)
    return paths
