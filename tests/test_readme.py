"""The README's plugin examples (a model, a dataset), run verbatim."""

from __future__ import annotations

import re
import shlex

from safetensors import safe_open

from tests.conftest import ROOT


def fenced_block_after(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\n```\w+\n(.*?)```", text, re.DOTALL)
    assert match, f"README lost its {marker} block"
    return match.group(1)


def test_readme_plugin_example_trains(zoo_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_plugins").mkdir()
    (tmp_path / "my_plugins" / "mlp.py").write_text(fenced_block_after("plugin-example"))
    command = shlex.split(fenced_block_after("plugin-command"))
    assert command[0] == "zoo"

    result = zoo_cli([*command[1:], "--quiet"])
    assert result.code == 0, result.err
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", result.out).group(1))
    assert accuracy > 90
    with safe_open("weights/mlp-digits.safetensors", framework="pt") as f:
        assert f.metadata()["model"] == '"mlp"'

    listed = zoo_cli("--plugins-dir my_plugins list")
    assert "mlp" in listed.out  # the plugin column is left out at 80 columns: see zoo plugins
    assert "my_plugins/mlp.py (file) mlp" in zoo_cli("--plugins-dir my_plugins plugins").out


def test_readme_dataset_example_trains(zoo_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_plugins").mkdir()
    (tmp_path / "my_plugins" / "shapes.py").write_text(fenced_block_after("dataset-example"))
    command = shlex.split(fenced_block_after("dataset-command"))
    assert command[0] == "zoo"

    result = zoo_cli([*command[1:], "--quiet", "--threads", "1"])
    assert result.code == 0, result.err
    assert "batch size" not in result.err  # 800 training images: 20 steps of 32
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", result.out).group(1))
    assert accuracy > 90
    with safe_open("weights/lenet-shapes.safetensors", framework="pt") as f:
        assert f.metadata()["classes"] == '["circle", "square"]'
    assert "shapes" in zoo_cli("--plugins-dir my_plugins datasets").out
