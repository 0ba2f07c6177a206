"""`folder:PATH`: the user's own images in torchvision's ImageFolder layout.

PATH/train/<class>/* and PATH/val/<class>/* (or test/), or PATH/<class>/* split
deterministically. The folder is walked as `zoo.util.folders` walks: no directory symlink
is followed, only regular files are read, a file reached twice counts once (all said in a
warning). The images are decoded once, in `workers` processes, resized and cropped as
`zoo.data.preprocess` does, into the on-disk cache (`zoo.data.cache`), which later runs reuse
while no file is added, removed or changed. Files that do not decode are skipped and counted
in a warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from zoo.data import cache
from zoo.data.stream import cached_loader
from zoo.errors import ZooError
from zoo.util.folders import Walk, subfolders, walk

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
    left_out, seen = [], set()  # a file is one sample, in one split, whatever links lead to it
    for folder, is_held_out in parts:
        samples, skipped = _samples(absolute / folder.relative_to(root), classes, seen)
        left_out += [skipped] if skipped else []
        for path, label in samples:
            stat = os.stat(path)
            rows["source"].append(path)
            rows["label"].append(label)
            rows["held_out"].append(is_held_out)
            files.append((path[len(str(absolute)) :], stat.st_size, stat.st_mtime_ns))
    if left_out:
        warnings.warn(f"{root}: left out {'; '.join(left_out)}", stacklevel=2)
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
    classes, _ = subfolders(folder)
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise ZooError(f"{folder} needs one subfolder per class, at least 2 ({found})")
    return classes


def _samples(
    folder: Path, classes: list[str], seen: set
) -> tuple[list[tuple[str, int]], str | None]:
    """The image files of each class's subfolder of `folder` (`zoo.util.folders.walk`: no
    directory symlink followed, regular files only, each once over `seen`) with their class
    index, and what was left out, in words."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    present, links = subfolders(folder)
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise ZooError(f"{folder} has classes the training images lack: {', '.join(unknown)}")
    samples, found = [], Walk(linked_folders=links)
    for label, name in enumerate(classes):
        if name in present:
            walked = walk(folder / name, IMG_EXTENSIONS, seen)
            found.linked_folders += walked.linked_folders
            found.not_regular += walked.not_regular
            found.repeated += walked.repeated
            samples += [(str(path), label) for path in walked.files]
    return samples, found.left_out()


load_folder = cached_loader(prepare_folder)
