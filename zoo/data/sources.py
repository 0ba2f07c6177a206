"""The core's datasets by name (its `zoo_datasets` hook) and `load_dataset`: small ones decoded
into uint8 tensors in memory, folders and Hugging Face datasets prepared once into the on-disk
cache.

Declaring the datasets imports no torch: each loader's module is imported when it loads.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.data.cache import data_dir, dataset_cache_dir
from zoo.data.locate import EMBEDDED, cifar_locator, idx_locator
from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec

if TYPE_CHECKING:
    from zoo.data.splits import ImageSplits

# The loaders, and the modules of `zoo.data` that define them (imported on first use).
_LAZY = {
    "load_digits": "digits",
    "load_folder": "folder",
    "load_mnist": "torchvision_sets",
    "load_fashion_mnist": "torchvision_sets",
    "load_cifar10": "torchvision_sets",
    "load_cifar100": "torchvision_sets",
    "load_hf": "hf",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"zoo.data.{_LAZY[name]}"), name)


def _loader(name: str) -> Callable[..., ImageSplits]:
    """`name`'s loader, imported when it is called."""

    def load(*args: Any, **kwargs: Any) -> ImageSplits:
        return __getattr__(name)(*args, **kwargs)

    load.__name__ = load.__qualname__ = name
    return load


def default_workers() -> int:
    """Decoding processes when --workers is not given."""
    return min(4, os.cpu_count() or 1)


def load_dataset(
    registry,
    name: str,
    size: int,
    root: str | Path | None = None,
    download: bool = False,
    workers: int | None = None,
    augment: bool = False,
    progress: bool = False,
) -> tuple[DatasetSpec, ImageSplits]:
    """The dataset called `name` (or `name:PATH`), decoded for a model of input `size`.

    Datasets of files of varying sizes are read from the on-disk cache under the data folder,
    prepared first (in `workers` processes, with a progress bar if `progress`) where missing,
    at a larger size if `augment` will crop them.
    """
    from zoo.data.contract import call_loader

    spec, path = registry.dataset(name)
    data = call_loader(
        spec,
        root=path or data_dir(root),
        download=download,
        size=size,
        workers=default_workers() if workers is None else workers,
        cache_root=dataset_cache_dir(data_dir(root)),
        augment=augment,
        progress=progress,
    )
    if not data.source:
        data = replace(data, source=str(path or data_dir(root)))
    return spec, data


@hookimpl
def zoo_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            "digits",
            "1,797 8x8 handwritten digits (embedded)",
            _loader("load_digits"),
            flip=False,
            locate=lambda root=None: EMBEDDED,
        ),
        DatasetSpec(
            "mnist",
            "70,000 28x28 handwritten digits (IDX files)",
            _loader("load_mnist"),
            flip=False,
            locate=idx_locator("MNIST"),
        ),
        DatasetSpec(
            "fashion-mnist",
            "70,000 28x28 Zalando clothing images, 10 classes (IDX files; Debian: apt-get "
            "install dataset-fashion-mnist)",
            _loader("load_fashion_mnist"),
            locate=idx_locator("FashionMNIST"),
        ),
        DatasetSpec(
            "cifar10",
            "60,000 32x32 colour images, 10 classes",
            _loader("load_cifar10"),
            locate=cifar_locator("CIFAR10"),
        ),
        DatasetSpec(
            "cifar100",
            "60,000 32x32 colour images, 100 fine classes",
            _loader("load_cifar100"),
            locate=cifar_locator("CIFAR100"),
        ),
        DatasetSpec(
            "folder",
            "your images: PATH/train/<class>/, PATH/val/<class>/ or PATH/<class>/ (split 80/20)",
            _loader("load_folder"),
            takes_path=True,
        ),
        DatasetSpec(
            "hf",
            "a Hugging Face dataset with image and label columns: hf:NAME (the Hub, offline from "
            "its cache) or hf:PATH (save_to_disk)",
            _loader("load_hf"),
            takes_path=True,
        ),
    ]
