"""torchvision's pretrained builders for plugins, with a one-line offline error."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models import WeightsEnum

from zoo.errors import ZooError
from zoo.specs import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "torchvision_model"]


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
