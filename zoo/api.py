"""zoo from Python: `zoo.load` a weights file as a ready classifier, `zoo.list_models` and
`zoo.model_spec` for what the installed plugins provide::

    import zoo

    classifier = zoo.load("weights/lenet-digits.safetensors")
    answer = classifier.predict("seven.png")  # or a PIL image, an array, or a list of them
    answer.label, answer.top, answer.unknown
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from zoo.registry import get_registry

if TYPE_CHECKING:
    from zoo.serving.inference import Classifier
    from zoo.specs import ModelSpec


def load(path: str | Path) -> Classifier:
    """A weights file (or `imagenet/<model>`, that model's ImageNet classifier) as a
    `Classifier`: the model in eval mode, its classes, input spec (the preprocessing),
    temperature and unknown-input detector, checked before anything is built."""
    from zoo.serving.inference import Classifier

    return Classifier.open(get_registry(), path)


def list_models(pattern: str | None = None) -> list[str]:
    """The names of the models whose name matches a glob `pattern` (as `zoo list` shows them),
    or of every listed model."""
    return [spec.name for spec in get_registry().find(pattern)]


def model_spec(name: str) -> ModelSpec:
    """What model `name` is (its input, head, defaults, plugin), or a ZooError with the
    closest names."""
    return get_registry().model(name)
