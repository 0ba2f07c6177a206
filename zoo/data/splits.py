"""A dataset decoded once into uint8 tensors, and its deterministic splits and subsets."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from zoo.errors import ZooError

SPLIT_SEED = 0  # the train/test split never changes with --seed
TEST_FRACTION = 0.2


@dataclass
class ImageSplits:
    """A dataset decoded once: uint8 images (N, C, H, W) and int64 labels per split.

    The images are tensors in memory, or `zoo.data.stream.MappedImages` read from the
    on-disk cache a batch at a time; `photos` says they are photographs stored larger than the
    model's input, for random-resized-crop augmentation; `source` says where they were read
    from (a folder, or how the dataset is embedded).
    """

    classes: list[str]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    photos: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.classes) < 2:
            raise ZooError(f"a dataset needs at least 2 classes, this one has {self.classes}")
        if not len(self.train_labels) or not len(self.test_labels):
            raise ZooError("the dataset has no training or no test images")

    def limit(self, n: int) -> ImageSplits:
        """A deterministic, class-stratified subset of `n` training images."""
        keep = _stratified_order(self.train_labels)[:n].sort().values
        return replace(
            self, train_images=self.train_images[keep], train_labels=self.train_labels[keep]
        )


def _stratified_order(labels: torch.Tensor) -> torch.Tensor:
    """Indices ordered so that every prefix is (nearly) class-balanced, deterministically."""
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    perm = torch.randperm(len(labels), generator=generator)
    rank = torch.empty(len(labels), dtype=torch.long)
    for c in labels.unique():
        members = perm[labels[perm] == c]
        rank[members] = torch.arange(len(members))
    return perm[torch.argsort(rank[perm], stable=True)]


def split_train_test(images: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> ImageSplits:
    """Split one labelled set deterministically (stratified) into train and test."""
    order = _stratified_order(labels)
    n_test = round(len(labels) * TEST_FRACTION)
    test, train = order[:n_test].sort().values, order[n_test:].sort().values
    return ImageSplits(classes, images[train], labels[train], images[test], labels[test])


HELD_OUT_FRACTION = 0.1


def hold_out(data: ImageSplits) -> tuple[ImageSplits, torch.Tensor, torch.Tensor]:
    """Set aside a deterministic, class-stratified `HELD_OUT_FRACTION` of the training images
    (never trained on; for fitting the temperature and the unknown-input detector): the data
    without them, and their images and labels. Too small a training split keeps everything."""
    n = round(len(data.train_labels) * HELD_OUT_FRACTION)
    if n < 1 or len(data.train_labels) - n < 1:
        return data, data.train_images[:0], data.train_labels[:0]
    order = _stratified_order(data.train_labels)
    held, kept = order[:n].sort().values, order[n:].sort().values
    rest = replace(data, train_images=data.train_images[kept], train_labels=data.train_labels[kept])
    return rest, data.train_images[held], data.train_labels[held]
