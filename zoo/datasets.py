"""Datasets as in-memory uint8 tensors, and the core's `zoo_datasets` hook."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec

SPLIT_SEED = 0  # the train/test split never changes with --seed
TEST_FRACTION = 0.2


@dataclass
class ImageSplits:
    """A dataset decoded once: uint8 images (N, C, H, W) and int64 labels per split."""

    classes: list[str]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def limit(self, n: int) -> ImageSplits:
        """A deterministic, class-stratified subset of `n` training images."""
        keep = _stratified_order(self.train_labels)[:n].sort().values
        return ImageSplits(
            self.classes,
            self.train_images[keep],
            self.train_labels[keep],
            self.test_images,
            self.test_labels,
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


def load_digits(root=None, download: bool = False) -> ImageSplits:
    """scikit-learn's 1,797 real 8x8 handwritten digits, embedded in the package."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.from_numpy(digits.images * (255 / 16)).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(digits.target).long()
    return split_train_test(images, labels, [str(d) for d in range(10)])


@hookimpl
def zoo_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec("digits", "1,797 8x8 handwritten digits (embedded, scikit-learn)", load_digits),
    ]
