"""The harness's tiny generated dataset, `zoo-testing`: a bright square in one of three
corners of a dim, noisy image, one corner per class. Registered only by `zoo.testing.Harness`.

Declaring it imports no torch; the loader generates the images at the model's input size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec

if TYPE_CHECKING:
    from zoo.data.splits import ImageSplits

NAME = "zoo-testing"
CLASSES = ["top-left", "top-right", "bottom-left"]
PER_CLASS = 24


def load(root, download, size: int = 32) -> ImageSplits:
    """`PER_CLASS` RGB images a class at `size`, split 80/20 as every dataset is."""
    import torch

    from zoo.data.splits import split_train_test

    generator = torch.Generator().manual_seed(0)
    count = PER_CLASS * len(CLASSES)
    images = torch.randint(0, 64, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.arange(count) % len(CLASSES)
    half = max(1, size // 2)
    for i, label in enumerate(labels.tolist()):
        top, left = divmod(label, 2)
        images[i, :, top * half : (top + 1) * half, left * half : (left + 1) * half] = 224
    return split_train_test(images, labels, list(CLASSES))


@hookimpl
def zoo_datasets() -> list[DatasetSpec]:
    return [DatasetSpec(NAME, "zoo.testing's generated corners, 3 classes", load)]
