"""Pretrained weights for plugins: torchvision's, through its own cache and download code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, WeightsEnum

from zoo.errors import ZooError
from zoo.specs import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "cached_file",
    "imagenet_weights",
    "is_cached",
    "torchvision_model",
]

# The models whose `zoo_build(..., num_classes=1000, pretrained=True)` is torchvision's whole
# ImageNet classifier, with the weights it loads (whose metadata names the 1000 classes).
IMAGENET_CLASSIFIERS: dict[str, WeightsEnum] = {"resnet18": ResNet18_Weights.IMAGENET1K_V1}


def torchvision_model(builder: Callable[..., nn.Module], weights: WeightsEnum) -> nn.Module:
    """`builder(weights=weights)`, or a one-line ZooError saying where to put the file offline."""
    try:
        return builder(weights=weights)
    except Exception as error:
        name = weights.url.rsplit("/", 1)[-1]
        raise ZooError(
            f"cannot load {weights} ({type(error).__name__}: {error}); offline, place {name} "
            "in $TORCH_HOME/hub/checkpoints/"
        ) from None


def cached_file(weights: WeightsEnum) -> Path:
    """Where torchvision keeps (or would download) `weights`: $TORCH_HOME/hub/checkpoints/."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


def is_cached(weights: WeightsEnum) -> bool:
    """Whether `weights` load without a download."""
    return cached_file(weights).is_file()


def imagenet_weights(model: str) -> WeightsEnum:
    """The torchvision weights of `model`'s ImageNet classifier, or a ZooError."""
    if model not in IMAGENET_CLASSIFIERS:
        known = ", ".join(IMAGENET_CLASSIFIERS)
        raise ZooError(f"model {model!r} has no ImageNet classifier (models with one: {known})")
    return IMAGENET_CLASSIFIERS[model]
