"""`folder:PATH`: the user's own images in torchvision's ImageFolder layout.

PATH/train/<class>/* and PATH/val/<class>/* (or test/), or PATH/<class>/* split
deterministically. Images are decoded once, in DataLoader workers, resized and cropped to the
model's input size as `zoo.preprocess` does, and kept as one uint8 tensor. Files that do not
decode are skipped and counted in a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from zoo.datasets.splits import ImageSplits, split_train_test
from zoo.errors import ZooError
from zoo.preprocess import open_image, pil_to_uint8, resize_uint8

HELD_OUT = ("val", "test")


def load_folder(
    root: Path, download: bool = False, size: int = 224, workers: int = 0, **_
) -> ImageSplits:
    """The images under `root`, in either ImageFolder layout, as uint8 (N, 3, size, size)."""
    root = Path(root)
    if not root.is_dir():
        raise ZooError(f"folder dataset {root} does not exist")
    held_out = next((root / n for n in HELD_OUT if (root / n).is_dir()), None)
    if (root / "train").is_dir() and held_out is not None:
        classes = _classes(root / "train")
        train = _decode(root / "train", classes, size, workers)
        test = _decode(held_out, classes, size, workers)
        return ImageSplits(classes, *train, *test)
    classes = _classes(root)
    return split_train_test(*_decode(root, classes, size, workers), classes)


def _classes(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise ZooError(f"{folder} needs one subfolder per class, at least 2 ({found})")
    return classes


def _decode(
    folder: Path, classes: list[str], size: int, workers: int
) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    unknown = sorted({p.name for p in folder.iterdir() if p.is_dir()} - set(classes))
    if unknown:
        raise ZooError(f"{folder} has classes the training images lack: {', '.join(unknown)}")
    samples = make_dataset(
        str(folder), {c: i for i, c in enumerate(classes)}, IMG_EXTENSIONS, allow_empty=True
    )
    loader = DataLoader(
        _Files(samples, size), batch_size=64, num_workers=workers, collate_fn=lambda b: b
    )
    images, labels, failures = [], [], []
    for batch in loader:
        for image, label, failure in batch:
            if failure:
                failures.append(failure)
            else:
                images.append(image)
                labels.append(label)
    if failures:
        warnings.warn(
            f"skipped {len(failures)} unreadable image(s) in {folder} (first: {failures[0]})",
            stacklevel=2,
        )
    if not images:
        raise ZooError(f"{folder} has no readable images")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


class _Files(Dataset):
    """(path, label) samples -> (uint8 image, label, None), or (None, label, why) if unreadable."""

    def __init__(self, samples: list[tuple[str, int]], size: int) -> None:
        self.samples = samples
        self.size = size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            image = pil_to_uint8(open_image(path), 3, self.size)
        except ZooError as error:
            return None, label, str(error)
        return resize_uint8(image[None], self.size)[0], label, None
