"""zoo: a plugin-based PyTorch image-classification model zoo with a Gradio demo.

A plugin imports only this module to declare its models::

    import zoo

    @zoo.hookimpl
    def zoo_models():
        return [zoo.ModelSpec(name="tiny", summary="...", input=zoo.InputSpec(1, 28), head="fc")]

Importing ``zoo`` is light: no torch, no gradio.
"""

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.specs import IMAGENET_MEAN, IMAGENET_STD, DatasetSpec, InputSpec, ModelSpec, TrainDefaults

__version__ = "0.1.0"
__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DatasetSpec",
    "InputSpec",
    "ModelSpec",
    "TrainDefaults",
    "ZooError",
    "__version__",
    "hookimpl",
]
