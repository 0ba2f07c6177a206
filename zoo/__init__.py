"""zoo: a plugin-based PyTorch image-classification model zoo with a Gradio demo.

A plugin imports only this module::

    import zoo

    @zoo.hookimpl
    def zoo_models():
        return [zoo.ModelSpec(name="tiny", summary="...", input=zoo.InputSpec(1, 28), head="fc")]

From Python, `zoo.load(path)` gives a weights file as a ready classifier
(`classifier.predict(images)`), and `zoo.list_models()` and `zoo.model_spec(name)` say what
the plugins provide (`zoo.api`).

Everything a plugin needs is here: the hook marker and the declarations (`ModelSpec`,
`InputSpec`, `TrainDefaults`, `DatasetSpec`, `PretrainedWeights`), `ZooError`, the ImageNet
normalisation, and, for builders, loaders and exporters, `torchvision_model`, `cached_catalog`,
`ImageSplits`, `split_train_test`, `atomic_write`, and where torch's and Hugging Face's caches
keep a file (`torch_hub_file`, `hf_hub_file`). Importing ``zoo`` is light: no torch, no gradio
(the names for builders are imported when first used). `zoo.testing` checks a plugin from its
own tests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.specs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DatasetSpec,
    InputSpec,
    ModelSpec,
    PretrainedWeights,
    TrainDefaults,
)

if TYPE_CHECKING:
    from zoo.data.splits import ImageSplits, split_train_test
    from zoo.serving.pretrained import torchvision_model
    from zoo.util.catalog import cached as cached_catalog
    from zoo.util.files import atomic_write
    from zoo.util.hub import hf_hub_file, torch_hub_file

__version__ = "0.1.0"
__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DatasetSpec",
    "ImageSplits",
    "InputSpec",
    "ModelSpec",
    "PretrainedWeights",
    "TrainDefaults",
    "ZooError",
    "__version__",
    "atomic_write",
    "cached_catalog",
    "hf_hub_file",
    "hookimpl",
    "list_models",
    "load",
    "model_spec",
    "split_train_test",
    "torch_hub_file",
    "torchvision_model",
]

# The names imported on first use (they bring torch or torchvision): module, attribute.
_LAZY = {
    "load": ("zoo.api", "load"),
    "list_models": ("zoo.api", "list_models"),
    "model_spec": ("zoo.api", "model_spec"),
    "ImageSplits": ("zoo.data.splits", "ImageSplits"),
    "split_train_test": ("zoo.data.splits", "split_train_test"),
    "torchvision_model": ("zoo.serving.pretrained", "torchvision_model"),
    "cached_catalog": ("zoo.util.catalog", "cached"),
    "atomic_write": ("zoo.util.files", "atomic_write"),
    "torch_hub_file": ("zoo.util.hub", "torch_hub_file"),
    "hf_hub_file": ("zoo.util.hub", "hf_hub_file"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(module), attribute)
