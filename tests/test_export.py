"""`zoo export`: the core's four formats with their parity checks, a plugin's own format,
ImageNet weights from torchvision's cache, and every kind of bad input."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo import weights
from zoo.registry import get_registry
from zoo.serving.export import META_FILE

EXTENSIONS = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}


def embedded_meta(fmt: str, path: Path) -> dict:
    """The zoo metadata an exported file carries, read with each format's own tools."""
    if fmt == "safetensors":
        return weights.read_meta(path)
    if fmt == "onnx":
        import onnx

        return {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    files = {META_FILE: ""}
    if fmt == "torchscript":
        torch.jit.load(str(path), _extra_files=files)
    else:
        with open(path, "rb") as file:
            torch.export.load(file, extra_files=files)
    return json.loads(files[META_FILE])


def save_untrained(registry, name: str, path: Path, classes: int = 4) -> Path:
    """A real weights file for an untrained `name` model."""
    spec = registry.model(name)
    meta = {"model": name, "classes": [f"c{i}" for i in range(classes)]}
    meta["input"] = spec.input.to_dict()
    return weights.save(path, registry.build(spec, num_classes=classes), meta)


def assert_parity(out: str, fmt: str) -> None:
    """The --check line says the export matches PyTorch: small logit difference, same top-1."""
    match = re.search(rf"{fmt} vs PyTorch on (\d+) real images: max \|logit diff\| (\S+) ", out)
    assert match, out
    images, diff = int(match[1]), float(match[2])
    assert images == 18 and diff <= 1e-4
    assert f"same top-1 {images}/{images}: ok" in out


def one_line_error(result) -> str:
    assert result.code == 1, (result.out, result.err)
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    return result.err


@pytest.mark.parametrize("fmt", ["safetensors", "onnx", "torchscript", "pt2"])
def test_lenet_exports_carry_meta_and_match_pytorch(zoo_cli, lenet_weights, tmp_path, fmt):
    out = tmp_path / f"lenet{EXTENSIONS[fmt]}"
    result = zoo_cli(["export", str(lenet_weights), "--format", fmt, "--out", str(out), "--check"])
    assert result.code == 0, result.err
    assert_parity(result.out, fmt)
    source = weights.read_meta(lenet_weights)
    meta = embedded_meta(fmt, out)
    assert meta["classes"] == source["classes"] == [str(d) for d in range(10)]
    assert meta["input"] == source["input"]
    assert meta["metrics"] == source["metrics"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left


def test_onnx_has_a_dynamic_batch_axis(zoo_cli, lenet_weights, tmp_path):
    import onnx

    out = tmp_path / "lenet.onnx"
    assert zoo_cli(["export", str(lenet_weights), "-f", "onnx", "-o", str(out)]).code == 0
    graph = onnx.load(str(out)).graph
    (batch, *rest) = graph.input[0].type.tensor_type.shape.dim
    assert batch.dim_param and [d.dim_value for d in rest] == [1, 32, 32]
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == batch.dim_param


def test_default_output_is_beside_the_weights(zoo_cli, lenet_weights, tmp_path):
    source = tmp_path / "digits.safetensors"
    source.write_bytes(lenet_weights.read_bytes())
    result = zoo_cli(["export", str(source), "--format", "torchscript"])
    assert result.code == 0, result.err
    assert (tmp_path / "digits.torchscript.pt").is_file()
    assert "is the weights file itself" in one_line_error(zoo_cli(["export", str(source)]))


def test_three_channel_models_export_with_parity(zoo_cli, registry, tmp_path):
    for name, formats in [("cifar-cnn", ["onnx", "torchscript", "pt2"]), ("vgg16", ["onnx"])]:
        source = save_untrained(registry, name, tmp_path / f"{name}.safetensors")
        for fmt in formats:
            out = tmp_path / f"{name}{EXTENSIONS[fmt]}"
            result = zoo_cli(["export", str(source), "-f", fmt, "-o", str(out), "--check"])
            assert result.code == 0, result.err
            assert_parity(result.out, fmt)
            assert embedded_meta(fmt, out)["classes"] == ["c0", "c1", "c2", "c3"]


PLUGIN_FORMAT = '''
    """Adds an `npz` export format for every model."""
    import numpy as np

    import zoo
    from zoo.util.files import atomic_write


    def write(model, meta, tmp):
        arrays = {k: v.numpy() for k, v in model.state_dict().items()}
        with open(tmp, "wb") as file:
            np.savez(file, classes=np.array(meta["classes"]), **arrays)


    @zoo.hookimpl
    def zoo_export(spec, model, fmt, path, meta):
        if fmt != "npz":
            return None
        return atomic_write(path, lambda tmp: write(model, meta, tmp))
'''


def test_a_plugin_adds_a_format_for_every_model(zoo_cli, lenet_weights, registry, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "npz_format.py").write_text(textwrap.dedent(PLUGIN_FORMAT))
    cifar = save_untrained(registry, "cifar-cnn", tmp_path / "cifar.safetensors")
    for source in (lenet_weights, cifar):
        out = tmp_path / f"{source.stem}.npz"
        args = ["--plugins-dir", str(plugins), "export", str(source), "-f", "npz", "-o", str(out)]
        result = zoo_cli([*args, "--check"])
        assert result.code == 0, result.err
        assert "no check for format 'npz'" in result.err
        state, meta = weights.read(source)
        with np.load(out) as saved:
            assert set(saved.files) == {"classes", *state}  # no zoo.* tensor: the model's only
            assert list(saved["classes"]) == meta["classes"]
            for key, tensor in state.items():
                assert np.array_equal(saved[key], tensor.numpy())


def test_unknown_format_lists_the_known_ones(zoo_cli, lenet_weights, tmp_path):
    error = one_line_error(zoo_cli(["export", str(lenet_weights), "-f", "tflite"]))
    assert "unknown export format 'tflite'" in error
    assert "safetensors, onnx, torchscript, pt2" in error


def test_unwritable_output(zoo_cli, lenet_weights, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out, cause in [(blocker / "lenet.onnx", "cannot write"), (tmp_path, "it is a folder")]:
        args = ["export", str(lenet_weights), "-f", "onnx", "-o", str(out)]
        error = one_line_error(zoo_cli(args))
        assert cause in error and str(out) in error
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


BRANCHY_PLUGIN = '''
    """A model whose forward branches on its data: TorchScript traces it, torch.export cannot."""
    from torch import nn

    import zoo


    class Branchy(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x):
            y = self.fc(x.flatten(1))
            return y if y.sum() > 0 else -y


    @zoo.hookimpl
    def zoo_models():
        return [zoo.ModelSpec("branchy", "branches on data", zoo.InputSpec(1, 8), head="fc")]


    @zoo.hookimpl
    def zoo_build(spec, num_classes, pretrained):
        return Branchy(num_classes) if spec.name == "branchy" else None
'''


def test_a_model_that_cannot_take_a_format(zoo_cli, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "branchy.py").write_text(textwrap.dedent(BRANCHY_PLUGIN))
    source = save_untrained(get_registry([plugins]), "branchy", tmp_path / "branchy.safetensors")
    for fmt in ("pt2", "onnx"):
        out = tmp_path / f"branchy.{fmt}"
        args = ["--plugins-dir", str(plugins), "export", str(source), "-f", fmt, "-o", str(out)]
        error = one_line_error(zoo_cli(args))
        assert f"cannot export 'branchy' to {fmt}: " in error
        assert "data-dependent" in error
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["branchy.safetensors", "plugins"]


def test_corrupt_and_mismatched_weights(zoo_cli, registry, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    assert "not a valid safetensors file" in one_line_error(zoo_cli(["export", str(corrupt)]))
    lenet = registry.model("lenet")
    meta = {"model": "vgg16", "classes": ["a", "b"], "input": lenet.input.to_dict()}
    mismatched = weights.save(tmp_path / "mismatched.safetensors", registry.build(lenet, 2), meta)
    error = one_line_error(zoo_cli(["export", str(mismatched), "-f", "onnx"]))
    assert "does not fit the model" in error
    assert "is a model, not a weights file" in one_line_error(zoo_cli(["export", "lenet"]))
