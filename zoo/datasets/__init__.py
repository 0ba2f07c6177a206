"""Datasets as in-memory uint8 tensors, and the core's `zoo_datasets` hook."""

from __future__ import annotations

import os
from pathlib import Path

from zoo.datasets.digits import load_digits
from zoo.datasets.folder import load_folder
from zoo.datasets.splits import ImageSplits, split_train_test
from zoo.datasets.torchvision_sets import (
    load_cifar10,
    load_cifar100,
    load_fashion_mnist,
    load_mnist,
)
from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec

__all__ = ["ImageSplits", "data_dir", "load_dataset", "load_digits", "split_train_test"]

DATA_VARIABLE = "ZOO_DATA"


def data_dir(given: str | Path | None = None) -> Path:
    """Where downloadable datasets live: `given`, else $ZOO_DATA, else ~/.cache/zoo/data."""
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get(DATA_VARIABLE) or "~/.cache/zoo/data").expanduser()


def load_dataset(
    registry,
    name: str,
    size: int,
    root: str | Path | None = None,
    download: bool = False,
    workers: int | None = None,
) -> tuple[DatasetSpec, ImageSplits]:
    """The dataset called `name` (or `name:PATH`), decoded for a model of input `size`."""
    spec, path = registry.dataset(name)
    data = spec.load(
        root=path or data_dir(root),
        download=download,
        size=size,
        workers=min(4, os.cpu_count() or 1) if workers is None else workers,
    )
    return spec, data


@hookimpl
def zoo_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec("digits", "1,797 8x8 handwritten digits (embedded)", load_digits, flip=False),
        DatasetSpec("mnist", "70,000 28x28 handwritten digits (IDX files)", load_mnist, flip=False),
        DatasetSpec(
            "fashion-mnist", "70,000 28x28 Zalando clothing images, 10 classes", load_fashion_mnist
        ),
        DatasetSpec("cifar10", "60,000 32x32 colour images, 10 classes", load_cifar10),
        DatasetSpec("cifar100", "60,000 32x32 colour images, 100 fine classes", load_cifar100),
        DatasetSpec(
            "folder",
            "your images: PATH/train/<class>/, PATH/val/<class>/ or PATH/<class>/ (split 80/20)",
            load_folder,
            takes_path=True,
        ),
    ]
