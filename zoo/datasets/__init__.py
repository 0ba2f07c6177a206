"""Deprecated: `zoo.datasets.ImageSplits` and `split_train_test` are `zoo.ImageSplits` and
`zoo.split_train_test` now (removed in the next release)."""

from zoo.util.deprecated import moved

__getattr__ = moved(
    "zoo.datasets",
    {
        "ImageSplits": ("zoo.data.splits", "ImageSplits"),
        "split_train_test": ("zoo.data.splits", "split_train_test"),
        "load_dataset": ("zoo.data.sources", "load_dataset"),
    },
)
