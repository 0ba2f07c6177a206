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


def run_example(zoo_cli, folder, example: str, command: str, file: str, *options: str):
    """Save the README's `example` block as my_plugins/`file` in `folder`, then run its
    `command` block there (with `options`)."""
    (folder / "my_plugins").mkdir()
    (folder / "my_plugins" / file).write_text(fenced_block_after(example))
    words = shlex.split(fenced_block_after(command))
    assert words[0] == "zoo"
    return zoo_cli([*words[1:], *options])


def test_readme_plugin_example_trains(zoo_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_example(zoo_cli, tmp_path, "plugin-example", "plugin-command", "mlp.py", "--quiet")
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
    example = ("dataset-example", "dataset-command", "shapes.py", "--quiet", "--threads", "1")
    result = run_example(zoo_cli, tmp_path, *example)
    assert result.code == 0, result.err
    assert "batch size" not in result.err  # 800 training images: 20 steps of 32
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", result.out).group(1))
    assert accuracy > 90
    with safe_open("weights/lenet-shapes.safetensors", framework="pt") as f:
        assert f.metadata()["classes"] == '["circle", "square"]'
    assert "shapes" in zoo_cli("--plugins-dir my_plugins datasets").out


def test_readme_python_example_runs(lenet_weights, tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / lenet_weights.name).write_bytes(lenet_weights.read_bytes())
    digits = load_digits()
    seven = digits.images[-1 - list(digits.target[::-1]).index(7)]  # the last seven
    Image.fromarray((seven * 255 / 16).astype(np.uint8)).save("seven.png")
    scope: dict = {}
    exec(fenced_block_after("python-example"), scope)
    assert scope["answer"].label == "7"
    assert scope["zoo"].model_spec("lenet").input.channels == 1
