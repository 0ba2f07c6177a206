"""Plugin discovery and the registry, with real plugin files and a real installed entry point."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

from zoo.discovery import PluginWarning, load_plugins
from zoo.errors import ZooError
from zoo.registry import Registry

TINY_PLUGIN = """
import torch
from torch import nn
import zoo

@zoo.hookimpl
def zoo_models():
    return [zoo.ModelSpec(name="{name}", summary="a tiny test model",
                          input=zoo.InputSpec(1, 8), head="fc")]

@zoo.hookimpl
def zoo_build(spec, num_classes, pretrained):
    if spec.name != "{name}":
        return None
    model = nn.Sequential()
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(64, num_classes))
    return model
"""


def write_plugin(folder: Path, stem: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.py"
    path.write_text(textwrap.dedent(source))
    return path


def fresh_registry(*dirs: Path) -> Registry:
    return Registry(*load_plugins(dirs))


def test_builtins_are_registered(registry):
    for name in ("lenet", "cifar-cnn", "resnet18", "vgg16", "timm/resnet50"):
        assert registry.model(name).plugin.startswith("zoo.plugins.")
    assert registry.dataset("digits")[0].plugin == "zoo.datasets"


def test_plugin_file_in_a_folder_appears_and_builds(tmp_path):
    write_plugin(tmp_path, "tiny", TINY_PLUGIN.format(name="tiny"))
    registry = fresh_registry(tmp_path)
    spec = registry.model("tiny")
    assert spec.plugin == str(tmp_path / "tiny.py")
    model = registry.build(spec, num_classes=3)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_plugins_path_variable(tmp_path, monkeypatch):
    write_plugin(tmp_path, "viaenv", TINY_PLUGIN.format(name="viaenv"))
    monkeypatch.setenv("ZOO_PLUGINS_PATH", str(tmp_path))
    from zoo.discovery import plugin_dirs

    assert "viaenv" in fresh_registry(*plugin_dirs()).models


def test_installed_entry_point_plugin_appears(tmp_path, monkeypatch):
    """A distribution with a `zoo` entry point, laid out as pip installs one."""
    site = tmp_path / "site"
    write_plugin(site / "zoo_extra_models", "__init__", TINY_PLUGIN.format(name="extra-tiny"))
    dist_info = site / "zoo_extra_models-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: zoo-extra-models\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text("[zoo]\nextra = zoo_extra_models\n")
    monkeypatch.syspath_prepend(str(site))
    registry = fresh_registry()
    assert registry.model("extra-tiny").plugin == "extra"
    assert any(p.name == "extra" and p.source.startswith("entry point") for p in registry.plugins)
    monkeypatch.delitem(sys.modules, "zoo_extra_models")


def test_plugin_that_raises_on_import_is_contained(tmp_path):
    write_plugin(tmp_path, "broken", "raise RuntimeError('boom at import')\n")
    write_plugin(tmp_path, "tiny", TINY_PLUGIN.format(name="tiny"))
    with pytest.warns(
        PluginWarning, match="broken.py failed to load: RuntimeError: boom at import"
    ):
        registry = fresh_registry(tmp_path)
    broken = next(p for p in registry.plugins if p.name.endswith("broken.py"))
    assert "boom at import" in broken.error
    assert {"tiny", "lenet", "vgg16"} <= set(registry.models)


def test_plugin_returning_garbage_is_contained(tmp_path):
    write_plugin(
        tmp_path,
        "garbage",
        "import zoo\n@zoo.hookimpl\ndef zoo_models():\n    return ['not a spec']\n",
    )
    with pytest.warns(PluginWarning, match="not a ModelSpec"):
        registry = fresh_registry(tmp_path)
    assert "lenet" in registry.models


def test_override_warns_naming_both_plugins(tmp_path):
    write_plugin(tmp_path, "mylenet", TINY_PLUGIN.format(name="lenet"))
    with pytest.warns(
        PluginWarning,
        match=r"'lenet' from plugin .*mylenet.py overrides the one "
        r"from plugin zoo.plugins.lenet",
    ):
        registry = fresh_registry(tmp_path)
    spec = registry.model("lenet")
    # The later plugin's zoo_build answers first (firstresult): the tiny model, not LeNet.
    assert type(registry.build(spec, num_classes=10)).__name__ == "Sequential"


def test_failure_in_a_foreign_build_hook_is_skipped(tmp_path):
    write_plugin(
        tmp_path,
        "buggy",
        "import zoo\n@zoo.hookimpl\ndef zoo_build(spec, num_classes, pretrained):\n"
        "    raise ValueError('bug')\n",
    )
    registry = fresh_registry(tmp_path)
    with pytest.warns(PluginWarning, match="buggy.py failed in zoo_build"):
        model = registry.build(registry.model("lenet"), num_classes=10)
    assert type(model).__name__ == "LeNet"


def test_unknown_names_suggest_close_matches(registry):
    with pytest.raises(ZooError, match=r"unknown model 'lenett'; did you mean 'lenet'\?"):
        registry.model("lenett")
    with pytest.raises(ZooError, match="did you mean 'digits'"):
        registry.dataset("digit")
    with pytest.raises(ZooError, match="unknown model 'nothing-like-it'$"):
        registry.model("nothing-like-it")


def test_find_lists_curated_set_or_pattern(registry):
    listed = [spec.name for spec in registry.find()]
    assert listed[:4] == ["lenet", "cifar-cnn", "resnet18", "vgg16"]
    assert len(listed) < 20
    every_timm = registry.find("timm/*")
    assert len(every_timm) > 500 and all(s.name.startswith("timm/") for s in every_timm)


def test_invalid_model_name_is_refused():
    import zoo

    with pytest.raises(ValueError, match="invalid model name"):
        zoo.ModelSpec(name="Bad Name", summary="", input=zoo.InputSpec(1, 8), head="fc")


BAD_FINETUNE = """
import zoo

@zoo.hookimpl
def zoo_finetune(spec, model, strategy):
    return "oops"
"""


def test_finetune_of_the_wrong_type_for_every_model_is_skipped(tmp_path):
    write_plugin(tmp_path, "badtune", BAD_FINETUNE)
    registry = fresh_registry(tmp_path)
    spec = registry.model("lenet")
    model = registry.build(spec, num_classes=10)
    with pytest.warns(PluginWarning, match=r"badtune.py failed in zoo_finetune .*returned str"):
        groups = registry.finetune(spec, model, "full")
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters()
    )


def test_wrong_types_from_the_owning_plugin_are_one_line_errors(tmp_path):
    write_plugin(
        tmp_path,
        "stringy",
        TINY_PLUGIN.format(name="stringy").replace("    return model", "    return 'a model'"),
    )
    registry = fresh_registry(tmp_path)
    with pytest.raises(ZooError, match=r"stringy.py failed in zoo_build .*not an nn.Module"):
        registry.build(registry.model("stringy"), num_classes=3)


def test_finetune_groups_must_hold_the_models_own_parameters(tmp_path):
    write_plugin(
        tmp_path,
        "strangers",
        TINY_PLUGIN.format(name="strangers")
        + "\n@zoo.hookimpl\ndef zoo_finetune(spec, model, strategy):\n"
        "    return [{'params': nn.Linear(2, 2).parameters()}]\n",
    )
    registry = fresh_registry(tmp_path)
    spec = registry.model("strangers")
    with pytest.raises(ZooError, match="not the model's parameters"):
        registry.finetune(spec, registry.build(spec, num_classes=3), "full")


def test_export_hook_must_return_a_path(tmp_path, lenet_weights):
    from zoo.serving.export import export
    from zoo.serving.inference import Classifier

    write_plugin(
        tmp_path,
        "badexport",
        "import zoo\n@zoo.hookimpl(tryfirst=True)\n"
        "def zoo_export(spec, model, fmt, path, meta):\n    return 42\n",
    )
    registry = fresh_registry(tmp_path)
    with pytest.warns(PluginWarning, match=r"badexport.py failed in zoo_export .*not the path"):
        path = export(
            registry,
            Classifier.load(registry, lenet_weights),
            "safetensors",
            tmp_path / "out.safetensors",
        )
    assert path.is_file()
