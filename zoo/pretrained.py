"""Deprecated: `zoo.pretrained.torchvision_model` is `zoo.torchvision_model` now (removed in the
next release)."""

from zoo.util.deprecated import moved

__getattr__ = moved(
    "zoo.pretrained", {"torchvision_model": ("zoo.serving.pretrained", "torchvision_model")}
)
