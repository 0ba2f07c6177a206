"""`folder:PATH`: the user's own images in torchvision's ImageFolder layout.

PATH/train/<class>/* and PATH/val/<class>/* (or test/), or PATH/<class>/* split
deterministically. The images are decoded once, in `workers` processes, resized and cropped as
`zoo.data.preprocess` does, into the on-disk cache (`zoo.data.cache`), which later runs reuse
while no file is added, removed or changed. Files that do not decode are skipped and counted
in a warning.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.data import cache
from zoo.data.stream import cached_loader
from zoo.errors import ZooError

HELD_OUT = ("val", "test")


def prepare_folder(
    root: Path,
    size: int,
    workers: int,
    cache_root: Path,
    augment: bool = False,
    progress: bool = False,
) -> Path:
    """The cache folder (under `cache_root`) of the images under `root` at `size` (or larger
    for `augment`), decoded first if need be."""
    root = Path(root)
    if not root.is_dir():
        raise ZooError(f"folder dataset {root} does not exist")
    held_out = next((root / n for n in HELD_OUT if (root / n).is_dir()), None)
    if (root / "train").is_dir() and held_out is not None:
        classes = _classes(root / "train")
        parts = [(root / "train", False), (held_out, True)]
    else:
        classes = _classes(root)
        parts = [(root, False)]
    rows: dict[str, list] = {"source": [], "label": [], "held_out": []}
    files = []  # what the cache key covers: path under root, bytes, mtime
    absolute = root.resolve()
    for folder, is_held_out in parts:
        for path, label in _samples(absolute / folder.relative_to(root), classes):
            stat = os.stat(path)
            rows["source"].append(path)
            rows["label"].append(label)
            rows["held_out"].append(is_held_out)
            files.append((path[len(str(absolute)) :], stat.st_size, stat.st_mtime_ns))
    if not files:
        raise ZooError(f"{root} has no readable images")
    stored = cache.stored_size(size, augment)

    def source():
        from datasets import Dataset

        return Dataset.from_dict(rows)

    return cache.build_cache(
        cache_root,
        f"folder-{absolute.name}",
        cache.cache_key("folder", stored, classes, files),
        source,
        stored,
        workers,
        progress,
        {"dataset": f"folder:{absolute}", "classes": classes},
    )


def _classes(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise ZooError(f"{folder} needs one subfolder per class, at least 2 ({found})")
    return classes


def _samples(folder: Path, classes: list[str]) -> list[tuple[str, int]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    unknown = sorted({p.name for p in folder.iterdir() if p.is_dir()} - set(classes))
    if unknown:
        raise ZooError(f"{folder} has classes the training images lack: {', '.join(unknown)}")
    return make_dataset(
        str(folder), {c: i for i, c in enumerate(classes)}, IMG_EXTENSIONS, allow_empty=True
    )


load_folder = cached_loader(prepare_folder)
