"""The Classify tab's example images, all real: a model's own dataset's test images (the first
of each class, captioned with its true class) and scikit-learn's two sample photographs,
written as image files to a cache folder once."""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.util.files import atomic_write

MAX_CLASSES = 20  # a dataset's examples: its first classes, one test image each
PHOTOS = "photos"
PHOTO_STEMS = ("china", "flower")  # scikit-learn's sample images


def default_folder() -> Path:
    """$XDG_CACHE_HOME/zoo/demo-examples (~/.cache/zoo/demo-examples)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "zoo" / "demo-examples"


@dataclass(frozen=True)
class Example:
    """An example image file, its caption, and its group (a dataset's name, or "photos")."""

    path: Path
    label: str
    group: str


def slug(text: str) -> str:
    """`text` as a file name's part: letters, digits, dots and dashes."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "x"


class Examples:
    """The example files in `folder`: the photographs, and each dataset's test images (as
    `<dataset>-<class>.png`, listed in `<dataset>.json`), written the first time they are
    asked for: a dataset is loaded once, then read from its files."""

    def __init__(self, registry: Registry, folder: Path) -> None:
        self.registry = registry
        self.folder = Path(folder)
        self._datasets: dict[str, list[Example]] = {}
        self._lock = threading.Lock()
        self.photos = self._photos()

    def of_model(self, meta: dict[str, Any] | None) -> list[Example]:
        """The test images of the dataset a weights file's model was trained on (its name
        and data folder as recorded), one of each class; none where that dataset is not
        found here."""
        dataset = (meta or {}).get("dataset")
        if not isinstance(dataset, str):
            return []
        root = (meta.get("settings") or {}).get("data_dir")
        size = meta.get("source_size") or meta["input"]["size"]
        key = slug(dataset)
        with self._lock:  # concurrent first requests load a dataset once
            if key not in self._datasets:
                self._datasets[key] = self._dataset_examples(key, dataset, root, size)
            return self._datasets[key]

    def _dataset_examples(
        self, key: str, dataset: str, root: str | None, size: int
    ) -> list[Example]:
        manifest = self.folder / f"{key}.json"
        if manifest.is_file():
            try:
                found = [Example(self.folder / n, label, dataset) for n, label in _read(manifest)]
                if all(example.path.is_file() for example in found):
                    return found
            except (OSError, ValueError, TypeError):
                pass  # rewritten below
        try:
            images = _first_of_each_class(self.registry, dataset, root, size)
        except (ZooError, OSError):
            return []  # not here: the model gets no examples of its own
        found = self._write(dataset, [(f"{key}-{slug(c)}.png", c, a) for c, a in images])
        rows = [[example.path.name, example.label] for example in found]
        atomic_write(manifest, lambda tmp: Path(tmp).write_text(json.dumps(rows)))
        return found

    def _photos(self) -> list[Example]:
        """scikit-learn's sample photographs, written the first time only: importing
        scikit-learn to read them costs 1.3 s at every start."""
        found = [Example(self.folder / f"{s}.png", f"photo: {s}", PHOTOS) for s in PHOTO_STEMS]
        if all(example.path.is_file() for example in found):
            return found
        return self._write(PHOTOS, _sample_photos())

    def _write(self, group: str, images: list[tuple[str, str, np.ndarray]]) -> list[Example]:
        examples = []
        for name, label, array in images:
            path = self.folder / name
            if not path.is_file():
                atomic_write(path, lambda tmp, a=array: Image.fromarray(a).save(tmp, format="PNG"))
            examples.append(Example(path, label, group))
        return examples


def _read(manifest: Path) -> list[tuple[str, str]]:
    rows = json.loads(manifest.read_text())
    return [(str(name), str(label)) for name, label in rows]


def _sample_photos() -> list[tuple[str, str, np.ndarray]]:
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    return [
        (f"{Path(path).stem}.png", f"photo: {Path(path).stem}", photo)
        for path, photo in zip(photos.filenames, photos.images, strict=True)
    ]


def _first_of_each_class(
    registry: Registry, dataset: str, root: str | None, size: int
) -> list[tuple[str, np.ndarray]]:
    """(class name, image as an H x W or H x W x 3 uint8 array): the first test image of each
    of the dataset's first `MAX_CLASSES` classes."""
    from zoo.data.sources import load_dataset

    _, data = load_dataset(registry, dataset, size, root=root, workers=1)
    labels = data.test_labels
    firsts = [
        (name, int((labels == c).nonzero()[0, 0]))
        for c, name in enumerate(data.classes[:MAX_CLASSES])
        if (labels == c).any()
    ]
    picked = data.test_images[torch.tensor([i for _, i in firsts], dtype=torch.long)]
    pixels = picked if isinstance(picked, torch.Tensor) else picked.read()
    arrays = [p[0].numpy() if p.shape[0] == 1 else p.permute(1, 2, 0).numpy() for p in pixels]
    return [(name, array) for (name, _), array in zip(firsts, arrays, strict=True)]
