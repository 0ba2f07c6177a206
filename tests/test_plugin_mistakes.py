"""Every plugin mistake named in one line: the plugin, the hook and the fix. Real plugin files
and real installed entry points (laid out as pip installs them), through the real CLI."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.test_registry import fresh_registry, write_plugin
from zoo.discovery import PluginWarning

TINY = """
import zoo

@zoo.hookimpl
def zoo_models():
    return [zoo.ModelSpec(name="tiny", summary="a tiny model", input=zoo.InputSpec(1, 8),
                          head="{head}", cam_layer={cam!r})]

@zoo.hookimpl
def zoo_build(spec, num_classes, pretrained):
    from torch import nn
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, num_classes))
"""


def one_line(result) -> str:
    assert result.code == 1, result.out
    assert result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
    return result.err


def test_a_misspelt_hook_is_named_with_the_right_one(zoo_cli, tmp_path):
    write_plugin(
        tmp_path, "typo", TINY.format(head="2", cam=None).replace("zoo_models", "zoo_modles")
    )
    with pytest.warns(PluginWarning, match=r"typo.py failed to load: TypeError: zoo_modles is no"):
        registry = fresh_registry(tmp_path)
    # Not registered at all: its zoo_build, which checks no name, builds no one else's model.
    assert type(registry.build(registry.model("lenet"), num_classes=10)).__name__ == "LeNet"
    result = zoo_cli(["--plugins-dir", str(tmp_path), "plugins"])
    assert "error: TypeError: zoo_modles is no zoo hook; did you mean zoo_models?" in result.out


def test_a_misspelt_recipe_option_is_named_with_the_right_one(zoo_cli, tmp_path):
    source = TINY.format(head="2", cam=None).replace(
        'head="2",', 'head="2", recipes={"digits": {"wieght_decay": 0.1}},'
    )
    write_plugin(tmp_path, "recipe", source)
    runs = tmp_path / "runs"
    result = zoo_cli(f"--plugins-dir {tmp_path} train tiny --runs-dir {runs} --out {tmp_path}")
    assert "the recipe of tiny for digits sets 'wieght_decay' (did you mean 'weight_decay'?)" in (
        one_line(result)
    )
    assert "plugin" in result.err and not runs.exists()


def test_an_unmarked_hook_and_an_argument_the_hook_does_not_pass(tmp_path):
    write_plugin(tmp_path, "unmarked", "def zoo_models():\n    return []\n")
    write_plugin(
        tmp_path,
        "badargs",
        "import zoo\n@zoo.hookimpl\ndef zoo_build(spec, classes, pretrained):\n    return None\n",
    )
    with pytest.warns(PluginWarning) as caught:
        registry = fresh_registry(tmp_path)
    messages = " | ".join(str(w.message) for w in caught)
    assert "unmarked.py failed to load: TypeError: zoo_models is not marked: put @zoo.hookimpl" in (
        messages
    )
    assert (
        "badargs.py failed to load: TypeError: zoo_build takes classes, which the hook does not "
        "pass; it passes spec, num_classes, pretrained"
    ) in messages
    failed = {Path(p.name).name for p in registry.plugins if p.error}
    assert {"unmarked.py", "badargs.py"} <= failed


@pytest.mark.parametrize(
    ("head", "cam", "named"),
    [("fc", None, "head='fc'"), ("2", "0.weight", "cam_layer='0.weight'"), ("3", "1", "head='3'")],
)
def test_head_and_cam_layer_must_name_modules(zoo_cli, tmp_path, head, cam, named):
    write_plugin(tmp_path / "plugins", "tiny", TINY.format(head=head, cam=cam))
    base = ["--plugins-dir", str(tmp_path / "plugins")]
    error = one_line(zoo_cli([*base, "info", "tiny"]))
    assert f"tiny.py: ModelSpec {named} (in zoo_models) names no module of the model" in error
    assert "; name one of its modules: 0, 1, 2, ... (print(model) shows them)" in error
    out = tmp_path / "weights"
    train = [*base, "train", "tiny", "--epochs", "1", "-q", "--out", str(out)]
    assert named in one_line(zoo_cli([*train, "--runs-dir", str(tmp_path / "runs")]))
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_a_close_module_name_is_suggested(tmp_path):
    from zoo.errors import ZooError

    source = TINY.format(head="fc4", cam=None).replace('name="tiny"', 'name="lenet-2"')
    source = source.replace("return nn.Sequential(", "return network()(num_classes)  # (")
    write_plugin(tmp_path, "lenet2", "from zoo.plugins.lenet import network\n" + source)
    registry = fresh_registry(tmp_path)
    with pytest.raises(ZooError, match=r"head='fc4' .*did you mean 'fc3', 'fc2', 'fc1'\?$"):
        registry.build(registry.model("lenet-2"), num_classes=3)


DATASET = """
import zoo

def stripes(root, download):
    import torch
    images = torch.zeros(40, 1, 8, 8, dtype=torch.uint8)
    images[::2, :, ::2] = 255
    labels = torch.arange(40) % 2
    return {result}

@zoo.hookimpl
def zoo_datasets():
    return [zoo.DatasetSpec(name="stripes", summary="stripes", load={load})]
"""
LOADERS = {
    "returns a list": ("[images, labels]", "stripes", "its loader returned list, not a zoo.Image"),
    "raises": ("1 / 0", "stripes", "its loader failed (ZeroDivisionError: division by zero)"),
    "needs more": ("None", "lambda root, download, colour: None", "its loader needs colour,"),
    "labels out of range": (
        "zoo.split_train_test(images, labels + 1, ['a', 'b'])",
        "stripes",
        "split has labels outside 0..1",
    ),
    "floats": (
        "zoo.split_train_test(images.float(), labels, ['a', 'b'])",
        "stripes",
        "split has images of torch.float32 (32, 1, 8, 8), not a uint8 tensor",
    ),
}


@pytest.mark.parametrize("case", list(LOADERS))
def test_a_dataset_loader_that_breaks_the_contract_is_one_line(zoo_cli, tmp_path, case):
    result, load, message = LOADERS[case]
    write_plugin(tmp_path / "plugins", "stripes", DATASET.format(result=result, load=load))
    args = ["--plugins-dir", str(tmp_path / "plugins"), "train", "lenet", "-d", "stripes", "-q"]
    error = one_line(zoo_cli([*args, "--out", str(tmp_path / "w")]))
    assert error.startswith("error: dataset 'stripes' (plugin ") and "zoo_datasets)" in error
    assert message in error
    assert not (tmp_path / "w").exists()


def test_a_loader_with_the_documented_two_arguments_works(tmp_path):
    from zoo.data.sources import load_dataset

    source = DATASET.format(
        result="zoo.split_train_test(images, labels, ['a', 'b'])", load="stripes"
    )
    write_plugin(tmp_path, "stripes", source)
    _, data = load_dataset(fresh_registry(tmp_path), "stripes", size=32)
    assert data.classes == ["a", "b"] and len(data.train_labels) == 32


EXPORTS = """
import numpy as np
import zoo

@zoo.hookimpl
def zoo_export(spec, model, fmt, path, meta):
    if fmt != "npz":
        return None
    arrays = {{k: v.numpy() for k, v in model.state_dict().items()}}
    {body}
"""


def export_npz(zoo_cli, weights: Path, body: str, out: Path):
    """`zoo export weights -f npz -o out` with the EXPORTS plugin doing `body`."""
    plugins = out.parent.parent / "plugins"
    write_plugin(plugins, "npz", EXPORTS.format(body=body))
    args = ["--plugins-dir", plugins, "export", weights, "-f", "npz", "-o", out]
    return zoo_cli([str(arg) for arg in args])


def test_an_export_path_reported_wrongly_is_named(zoo_cli, lenet_weights, tmp_path):
    out = tmp_path / "out" / "lenet.bin"
    result = export_npz(zoo_cli, lenet_weights, "np.savez(str(path), **arrays); return path", out)
    assert result.code == 0, result.err
    assert f"npz.py's zoo_export for 'npz' returned {out}, but wrote {out}.npz" in result.err
    assert f"wrote {out}.npz (npz," in result.out


def test_a_writer_that_adds_a_suffix_to_the_temporary_name_is_one_line(
    zoo_cli, lenet_weights, tmp_path
):
    body = "return zoo.atomic_write(path, lambda tmp: np.savez(tmp, **arrays))"
    out = tmp_path / "out" / "lenet.npz"
    error = one_line(export_npz(zoo_cli, lenet_weights, body, out))
    assert "npz.py in zoo_export for 'lenet': cannot write" in error
    assert "the writer added '.npz' to the temporary name it was given" in error
    assert list(out.parent.iterdir()) == []  # the stray .tmp.npz is gone too


def install(site: Path, dist: str, entry_point: str, module: str, source: str | None) -> None:
    """A distribution with a `zoo` entry point, laid out as pip installs one (`source` None:
    its module is missing)."""
    if source is not None:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{entry_point} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site-packages folder on the path; the CLI's cached registries forgotten around it."""
    from zoo import registry

    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    registry._load.cache_clear()
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("zoo_acme"):
            del sys.modules[name]
    registry._load.cache_clear()


def test_a_missing_entry_point_module_names_the_distribution(site):
    install(site, "zoo-acme", "acme", "zoo_acme_gone", None)
    with pytest.warns(PluginWarning) as caught:
        registry = fresh_registry()
    acme = next(p for p in registry.plugins if p.name == "acme")
    assert acme.error.startswith("ModuleNotFoundError: No module named 'zoo_acme_gone'; ")
    assert (
        "zoo-acme 1.0 is installed without its module: pip install --force-reinstall zoo-acme"
        in (acme.error)
    )
    assert any("plugin acme failed to load" in str(w.message) for w in caught)


def test_plugins_shows_distribution_version_and_hooks(zoo_cli, site):
    install(site, "zoo-acme", "acme", "zoo_acme", TINY.format(head="2", cam="0"))
    text = zoo_cli("plugins").out
    assert "acme (entry point zoo_acme) tiny\n  zoo-acme 1.0; hooks zoo_models, zoo_build\n" in text
    listed = next(p for p in json.loads(zoo_cli("plugins --json").out) if p["name"] == "acme")
    assert listed["distribution"] == "zoo-acme" and listed["version"] == "1.0"
    assert "zoo.plugins.lenet (built-in) lenet\n  zoo-models 0.1.0; hooks zoo_models" in text


def test_the_allow_list_keeps_an_installed_plugin_out(zoo_cli, site, monkeypatch, lenet_weights):
    for dist, module in (("zoo-acme", "zoo_acme"), ("zoo-other", "zoo_acme_other")):
        model = TINY.format(head="2", cam="0").replace('"tiny"', f'"{module.replace("_", "-")}"')
        install(site, dist, dist.removeprefix("zoo-"), module, model)
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "zoo-other,nosuch")
    listed = zoo_cli("list")
    assert "zoo-acme-other" in listed.out and "lenet" in listed.out  # the built-ins stay
    assert "zoo-acme " not in listed.out
    assert "'nosuch', which is no installed plugin" in listed.err
    assert "zoo_acme" not in sys.modules and "zoo_acme_other" in sys.modules
    text = zoo_cli("plugins").out
    assert "acme (entry point zoo_acme) \n  zoo-acme 1.0\n  skipped: not in the allow-list" in text

    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")  # none
    assert "zoo-acme" not in zoo_cli("list").out

    del sys.modules["zoo_acme_other"]
    monkeypatch.delenv("ZOO_LOAD_PLUGINS")
    import socket

    with socket.socket() as taken:  # the demo stops at the port, after loading its plugins
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        demo = ["demo", "--weights-dir", str(lenet_weights.parent), "--port", port]
        assert zoo_cli([*demo, "--plugins", "acme"]).code == 1
        assert "zoo_acme" in sys.modules and "zoo_acme_other" not in sys.modules


def test_zoo_build_is_asked_only_about_the_plugins_own_models(tmp_path):
    write_plugin(tmp_path, "tiny", TINY.format(head="2", cam="0"))  # checks no name
    registry = fresh_registry(tmp_path)
    assert type(registry.build(registry.model("lenet"), num_classes=10)).__name__ == "LeNet"
    tiny = registry.build(registry.model("tiny"), num_classes=3)
    assert tiny(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


RENAMED = """
import zoo

@zoo.hookimpl
def zoo_models():
    return [zoo.ModelSpec(name="{name}", summary="a tiny model", input=zoo.InputSpec(1, 8),
                          head="2", aliases={aliases})]

@zoo.hookimpl
def zoo_build(spec, num_classes, pretrained):
    from torch import nn
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, num_classes))
"""


def test_an_old_weights_file_loads_through_an_alias(zoo_cli, tmp_path):
    from PIL import Image

    old, new = tmp_path / "old", tmp_path / "new"
    write_plugin(old, "tiny", RENAMED.format(name="tiny", aliases=[]))
    base = ["train", "tiny", "--epochs", "1", "-q", "--out", str(tmp_path / "w")]
    assert zoo_cli(["--plugins-dir", str(old), *base]).code == 0
    weights = tmp_path / "w" / "tiny-digits.safetensors"
    write_plugin(new, "tiny", RENAMED.format(name="tiny-v2", aliases=["tiny"]))
    Image.new("L", (8, 8), 200).save(tmp_path / "x.png")
    image = str(tmp_path / "x.png")
    result = zoo_cli(["--plugins-dir", str(new), "predict", str(weights), image, "--json"])
    assert result.code == 0, result.err
    assert json.loads(result.out)["path"] == image
    info = zoo_cli(["--plugins-dir", str(new), "info", "tiny"]).out
    assert info.startswith("tiny-v2: ") and "also loads weights files of: tiny" in info
    gone = zoo_cli(["predict", str(weights), str(tmp_path / "x.png")])  # no plugin: one line
    assert "needs model 'tiny'" in one_line(gone)


def test_an_alias_that_names_a_model_is_ignored_with_a_warning(tmp_path):
    write_plugin(tmp_path, "tiny", RENAMED.format(name="tiny", aliases=["lenet"]))
    with pytest.warns(PluginWarning, match=r"alias 'lenet' of 'tiny' .* is ignored: it already"):
        registry = fresh_registry(tmp_path)
    assert registry.model("lenet").name == "lenet"


STRATEGY = (
    RENAMED.format(name="tiny", aliases=[]).replace(
        'head="2",', 'head="2", strategies=("full", "head", "last2"),'
    )
    + """
@zoo.hookimpl
def zoo_finetune(spec, model, strategy):
    if spec.name != "tiny" or strategy != "last2":
        return None
    model.requires_grad_(False)
    last = list(model.parameters())[-2:]
    for p in last:
        p.requires_grad_(True)
    return [{"params": last}]
"""
)


def test_a_plugins_strategy_is_listed_and_named_in_errors(zoo_cli, tmp_path):
    write_plugin(tmp_path, "tiny", STRATEGY)
    base = ["--plugins-dir", str(tmp_path)]
    assert "fine-tune strategies: full, head, last2" in zoo_cli([*base, "info", "tiny"]).out
    assert "or another the model's plugin adds" in " ".join(zoo_cli("train --help").out.split())
    train = [*base, "train", "tiny", "--epochs", "1", "-q", "--out", str(tmp_path / "w")]
    assert zoo_cli([*train, "--strategy", "last2"]).code == 0
    error = one_line(zoo_cli([*train, "--strategy", "last3"]))
    assert "no fine-tune strategy 'last3'; it declares full, head, last2" in error
