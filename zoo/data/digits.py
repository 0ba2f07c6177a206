"""scikit-learn's digits: the embedded default dataset."""

from __future__ import annotations

from dataclasses import replace

import torch

from zoo.data.locate import EMBEDDED
from zoo.data.splits import ImageSplits, split_train_test


def load_digits(root=None, download: bool = False, **_) -> ImageSplits:
    """scikit-learn's 1,797 real 8x8 handwritten digits, embedded in the package."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.from_numpy(digits.images * (255 / 16)).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(digits.target).long()
    data = split_train_test(images, labels, [str(d) for d in range(10)])
    return replace(data, source=EMBEDDED)
