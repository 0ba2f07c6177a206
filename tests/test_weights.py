"""The weights file: a real trained LeNet's round trip, its metadata, and every bad file."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from zoo import __version__, weights
from zoo.errors import ZooError
from zoo.serving.inference import Classifier


def test_round_trip_keeps_tensors_and_metadata(registry, lenet_weights):
    state, meta = weights.read(lenet_weights)
    assert meta["model"] == "lenet" and meta["plugin"] == "zoo.plugins.lenet"
    assert meta["classes"] == [str(d) for d in range(10)]
    assert meta["input"] == {"channels": 1, "size": 32, "mean": [0.5], "std": [0.5], "border": 2}
    assert meta["dataset"] == "digits" and meta["zoo_version"] == __version__
    assert 0.8 < meta["metrics"]["test_accuracy"] <= 1.0
    assert meta["settings"]["epochs"] == 3 and meta["settings"]["optimizer"] == "adamw"
    assert meta["created"].endswith("+00:00")
    # The header is plain str -> JSON str, readable by any safetensors reader.
    with safe_open(str(lenet_weights), framework="pt") as f:
        assert json.loads(f.metadata()["classes"])[0] == "0"
    classifier = Classifier.load(registry, lenet_weights)
    assert all(torch.equal(state[k], v) for k, v in classifier.model.state_dict().items())
    assert weights.read_meta(lenet_weights) == meta


def test_truncated_file(tmp_path, lenet_weights):
    broken = tmp_path / "truncated.safetensors"
    broken.write_bytes(lenet_weights.read_bytes()[:-1000])
    with pytest.raises(ZooError, match=r"truncated.safetensors: not a valid safetensors file"):
        weights.read(broken)


def test_not_safetensors(tmp_path):
    path = tmp_path / "photo.safetensors"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    with pytest.raises(ZooError, match=r"photo.safetensors: not a valid safetensors file \("):
        weights.read_meta(path)


def test_missing_file(tmp_path):
    with pytest.raises(ZooError, match="nope.safetensors: no such weights file"):
        weights.read(tmp_path / "nope.safetensors")


def test_safetensors_without_zoo_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ZooError, match="not a zoo weights file"):
        weights.read(path)


def test_weights_for_another_architecture_name_the_mismatch(registry, tmp_path, lenet_weights):
    _, meta = weights.read(lenet_weights)
    cifar = registry.build(registry.model("cifar-cnn"), num_classes=10)
    path = weights.save(tmp_path / "wrong.safetensors", cifar, {**meta, "model": "lenet"})
    with pytest.raises(
        ZooError,
        match=r"wrong.safetensors does not fit the model: conv1.weight "
        r"is \(6, 3, 5, 5\) in the file but \(6, 1, 5, 5\) in the model",
    ):
        Classifier.load(registry, path)


def test_weights_needing_a_missing_plugin(registry, tmp_path, lenet_weights):
    _, meta = weights.read(lenet_weights)
    model = registry.build(registry.model("lenet"), num_classes=10)
    path = weights.save(tmp_path / "x.safetensors", model, {**meta, "model": "fancy-net"})
    with pytest.raises(ZooError, match="needs model 'fancy-net'.*no installed plugin provides"):
        Classifier.load(registry, path)


def test_failed_write_leaves_no_file(registry, tmp_path):
    model = registry.build(registry.model("lenet"), num_classes=10)
    target = tmp_path / "out.safetensors"
    meta = {"model": "lenet", "classes": ["a"], "input": {}, "bad": object()}
    with pytest.raises(TypeError):
        weights.save(target, model, meta)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_survives_a_failed_overwrite(registry, tmp_path, lenet_weights):
    target = tmp_path / "keep.safetensors"
    target.write_bytes(lenet_weights.read_bytes())

    def crash(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        weights.atomic_write(target, crash)
    assert target.read_bytes() == lenet_weights.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.safetensors"]


def test_written_files_get_the_usual_permissions(lenet_weights):
    umask = os.umask(0)
    os.umask(umask)
    assert lenet_weights.stat().st_mode & 0o777 == 0o666 & ~umask
