"""zoo.testing's harness on the built-in plugins (written exactly as a third party would), and
the harness catching what it is there to catch."""

from __future__ import annotations

import pytest

from tests.test_registry import write_plugin
from zoo.discovery import BUILTIN_PLUGINS
from zoo.testing import Harness


@pytest.mark.parametrize("plugin", BUILTIN_PLUGINS)
def test_every_builtin_plugins_declarations(plugin):
    Harness(plugin).check_declarations()


@pytest.mark.parametrize(
    ("plugin", "model"),
    [
        ("zoo.plugins.lenet", "lenet"),
        ("zoo.plugins.cifar_cnn", "cifar-cnn"),
        ("zoo.plugins.resnet18", "resnet18"),
        ("zoo.plugins.vgg16", "vgg16"),
        ("zoo.plugins.timm_models", "timm/mobilenetv3_small_100"),
    ],
)
def test_every_builtin_model_as_the_core_uses_it(plugin, model):
    Harness(plugin).check_model(model, num_classes=3)


def test_lenet_trains_exports_and_explains_through_the_harness(tmp_path):
    harness = Harness("zoo.plugins.lenet")
    weights = harness.train("lenet", tmp_path)
    for fmt in ("safetensors", "torchscript"):
        assert harness.check_export(weights, fmt).is_file()
    harness.check_explain(weights)


def test_resnet18_trains_its_head_at_a_small_size(tmp_path):
    harness = Harness("zoo.plugins.resnet18")
    weights = harness.train("resnet18", tmp_path, image_size=32, strategy="head")
    harness.check_explain(weights, methods=("gradcam",))


BAD_OUTPUT = """
import zoo

@zoo.hookimpl
def zoo_models():
    return [zoo.ModelSpec(name="fixed", summary="ignores num_classes", input=zoo.InputSpec(1, 8),
                          head="1", defaults=zoo.TrainDefaults(strategy="last2"))]

@zoo.hookimpl
def zoo_build(spec, num_classes, pretrained):
    from torch import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
"""


def test_the_harness_names_what_a_plugin_gets_wrong(tmp_path):
    write_plugin(tmp_path, "fixed", BAD_OUTPUT)
    harness = Harness("fixed", dirs=(tmp_path,))
    with pytest.raises(AssertionError, match=r"default strategy 'last2' is not in its ModelSpec"):
        harness.check_declarations()
    with pytest.raises(AssertionError, match=r"gives \(2, 10\) for 2 images .* not \(2, 3\)"):
        harness.check_model("fixed", num_classes=3)
    with pytest.raises(AssertionError, match="no plugin called 'nosuch' is installed"):
        Harness("nosuch")
