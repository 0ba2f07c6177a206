"""Deprecated: `zoo.datasets.splits` names are `zoo.ImageSplits` and `zoo.split_train_test` now
(removed in the next release)."""

from zoo.util.deprecated import moved

__getattr__ = moved(
    "zoo.datasets.splits",
    {
        "ImageSplits": ("zoo.data.splits", "ImageSplits"),
        "split_train_test": ("zoo.data.splits", "split_train_test"),
        "hold_out": ("zoo.data.splits", "hold_out"),
    },
)
