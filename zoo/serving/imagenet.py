"""A model's pretrained ImageNet classifier, `imagenet/<model>`, where a plugin says (through
`zoo_pretrained`) that its 1000-class weights are here."""

from __future__ import annotations

import functools
from pathlib import Path

from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.specs import PretrainedWeights

IMAGENET = "imagenet/"  # `imagenet/<model>` names a model's pretrained ImageNet classifier


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, in the classifiers' order: torchvision's list, kept
    in a file beside this module because importing torchvision costs 1.2-1.7 s."""
    return list(_imagenet_classes())


@functools.cache
def _imagenet_classes() -> tuple[str, ...]:  # read once: the demo asks at every page load
    return tuple((Path(__file__).parent / "imagenet_classes.txt").read_text().splitlines())


def imagenet_models(registry: Registry, here: bool = True) -> list[str]:
    """The listed models (`zoo list`) with a pretrained ImageNet classifier: whose weights are
    here, or (not `here`) anywhere."""
    found = []
    for spec in registry.find():
        weights = registry.pretrained(spec)
        if weights is not None and weights.classes == "imagenet" and (weights.file or not here):
            found.append(spec.name)
    return found


def imagenet_weights(registry: Registry, model: str) -> PretrainedWeights:
    """The pretrained weights of `model`'s ImageNet classifier, here; or a ZooError saying
    which models have one, or what would provide them."""
    weights = registry.pretrained(registry.model(model))
    if weights is None or weights.classes != "imagenet":
        known = ", ".join(imagenet_models(registry, here=False))
        raise ZooError(f"model {model!r} has no ImageNet classifier (models with one: {known})")
    if not weights.file:
        raise ZooError(f"the ImageNet weights of {model} are not here: {weights.provider}")
    return weights
