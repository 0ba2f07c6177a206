"""The dataset loader contract: which arguments a `DatasetSpec.load` gets, and the check of
what it returns. A loader that takes arguments zoo does not pass, raises, or returns something
other than `ImageSplits` of uint8 images and labels in range is one error naming its plugin,
the hook and the fix."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from zoo.data.splits import ImageSplits
from zoo.data.stream import MappedImages
from zoo.errors import ZooError
from zoo.specs import DatasetSpec

REQUIRED = ("root", "download")  # always passed
HINTS = ("size", "workers", "cache_root", "augment", "progress")  # passed where named
ARGUMENTS = REQUIRED + HINTS


def accepted(spec: DatasetSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """Those of `arguments` that `spec.load` takes (all of them for `**kwargs`); a ZooError if
    it needs one that zoo does not pass."""
    try:
        parameters = list(inspect.signature(spec.load).parameters.values())
    except (TypeError, ValueError):  # a callable with no signature: pass everything
        return arguments
    needed = [
        p.name
        for p in parameters
        if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    unknown = [name for name in needed if name not in arguments]
    if unknown:
        raise ZooError(
            f"{_where(spec)}: its loader needs {', '.join(unknown)}, which zoo does not pass; a "
            f"loader takes {', '.join(REQUIRED)} and any of {', '.join(HINTS)} "
            "(see zoo.DatasetSpec)"
        )
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return arguments
    named = {p.name for p in parameters}
    return {key: value for key, value in arguments.items() if key in named}


def call_loader(spec: DatasetSpec, **arguments: Any) -> ImageSplits:
    """`spec.load` called with `root`, `download` and the hints its signature names, its
    result checked."""
    passed = accepted(spec, arguments)
    try:
        data = spec.load(**passed)
    except ZooError:
        raise
    except Exception as error:
        lines = str(error).strip().splitlines()
        cause = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        where = _where(spec)
        raise ZooError(f"{where}: its loader failed ({cause}); fix it in that plugin") from error
    check_splits(_where(spec), data)
    return data


def _where(spec: DatasetSpec) -> str:
    return f"dataset {spec.name!r} (plugin {spec.plugin}, zoo_datasets)"


def check_splits(where: str, data: Any) -> None:
    """A ZooError unless `data` is `ImageSplits` of uint8 (N, C, H, W) images, C 1 or 3, and
    int64 labels, one per image, each a class index."""
    if not isinstance(data, ImageSplits):
        raise ZooError(
            f"{where}: its loader returned {type(data).__name__}, not a zoo.ImageSplits; return "
            "zoo.split_train_test(images, labels, classes) or zoo.ImageSplits(...)"
        )
    for split in ("train", "test"):
        images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
        problem = _images_problem(images) or _labels_problem(labels, len(images), data.classes)
        if problem:
            raise ZooError(f"{where}: its loader's {split} split {problem}")


def _images_problem(images: Any) -> str | None:
    if isinstance(images, MappedImages):
        return None
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        kind = getattr(images, "dtype", type(images).__name__)
        shape = tuple(getattr(images, "shape", ()))
        return f"has images of {kind} {shape}, not a uint8 tensor (N, C, H, W)"
    if images.shape[1] not in (1, 3):
        return f"has {images.shape[1]} channels, not 1 or 3 (images are N, C, H, W)"
    return None


def _labels_problem(labels: Any, count: int, classes: list[str]) -> str | None:
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1:
        return f"has labels of {getattr(labels, 'dtype', type(labels).__name__)}, not int64 (N,)"
    if len(labels) != count:
        return f"has {len(labels)} labels for {count} images"
    if labels.min() < 0 or labels.max() >= len(classes):
        return f"has labels outside 0..{len(classes) - 1} (one per class name)"
    return None
