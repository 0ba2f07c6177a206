"""Weights any PyTorch user loads strictly: the file's tensors are exactly the model's, zoo's
detector rides in the header or a companion file, and older files still load; `zoo.load`."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

import zoo
from zoo import weights
from zoo.errors import ZooError
from zoo.serving.inference import Classifier
from zoo.serving.predict import predict_files


class Net(nn.Module):
    """Seed 001's LeNet, as the PyTorch tutorial writes it."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), (2, 2))
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class CifarNet(nn.Module):
    """Seed 000's CIFAR-10 network, as the tutorial writes it."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)


def seed_vgg16() -> nn.Module:
    """Seed 002's VGG16 transfer model, built as the tutorial builds it."""
    model = torchvision.models.vgg16()
    model.avgpool = nn.AdaptiveAvgPool2d((3, 3))
    model.classifier = nn.Sequential(
        nn.Linear(512 * 3 * 3, 512), nn.ReLU(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    return model


def test_a_trained_lenet_loads_strictly_into_the_seed_tutorials_class(registry, lenet_weights):
    classifier = Classifier.load(registry, lenet_weights)
    assert classifier.detector is not None  # zoo's detector is in the file, out of sight
    net = Net().eval()
    net.load_state_dict(load_file(lenet_weights), strict=True)
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), classifier.model(x), atol=1e-6)


def lite0() -> nn.Module:
    return timm.create_model("tf_efficientnet_lite0", num_classes=10)


BARE = {
    "cifar-cnn": CifarNet,
    "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "vgg16": seed_vgg16,
    "timm/tf_efficientnet_lite0": lambda: timm.create_model(
        "tf_efficientnet_lite0", num_classes=10
    ),
}


@pytest.mark.parametrize("name", BARE)
def test_every_built_in_loads_strictly_into_its_own_constructor(registry, tmp_path, name):
    spec = registry.model(name)
    model = registry.build(spec, num_classes=10)
    extra = {"unknown.precision": torch.randn(600, 600)}  # over INLINE_BYTES: a companion
    meta = {"model": name, "classes": [f"c{i}" for i in range(10)], "input": spec.input.to_dict()}
    path = weights.save(tmp_path / "model.safetensors", model, meta, extra)
    assert weights.companion(path).is_file()
    bare = BARE[name]()
    bare.load_state_dict(load_file(path), strict=True)
    assert torch.equal(weights.read_extra(path)["unknown.precision"], extra["unknown.precision"])


def test_a_small_detector_rides_in_the_header(lenet_weights):
    with safe_open(str(lenet_weights), framework="pt") as f:
        assert not any(k.startswith(weights.EXTRA) for k in f.keys())  # noqa: SIM118
        assert "inline" in json.loads(f.metadata()[weights.EXTRA_KEY])
    assert not weights.companion(lenet_weights).exists()
    assert weights.EXTRA_KEY not in weights.read_meta(lenet_weights)  # not metadata
    assert {"unknown.means", "unknown.precision"} <= set(weights.read_extra(lenet_weights))


@pytest.fixture
def with_companion(registry, lenet_weights, tmp_path, monkeypatch) -> tuple:
    """The trained LeNet saved again with its detector in a companion file."""
    classifier = Classifier.load(registry, lenet_weights)
    monkeypatch.setattr(weights, "INLINE_BYTES", 0)
    path = weights.save(
        tmp_path / "big.safetensors",
        classifier.model,
        classifier.meta,
        weights.read_extra(lenet_weights),
    )
    return path, classifier


def probabilities(classifier: Classifier) -> torch.Tensor:
    images = [torch.full((1, 8, 8), 16 * i, dtype=torch.uint8) for i in range(4)]
    return classifier.predict_batch(classifier.inputs(images))


def test_a_large_detector_lives_in_a_companion_and_travels_with_it(registry, with_companion):
    path, original = with_companion
    loaded = Classifier.load(registry, path)
    assert loaded.detector is not None
    assert torch.equal(probabilities(loaded).unknown, probabilities(original).unknown)
    moved = path.with_name("moved.safetensors")
    path.rename(moved)
    weights.companion(path).rename(weights.companion(moved))
    assert Classifier.load(registry, moved).detector is not None


def test_without_its_companion_a_file_loads_with_a_notice(registry, with_companion):
    path, original = with_companion
    weights.companion(path).unlink()
    with pytest.warns(weights.ExtraMissing, match=r"big.safetensors.extra is missing; the unkn"):
        loaded = Classifier.load(registry, path)
    assert loaded.detector is None
    assert torch.allclose(
        probabilities(loaded).probabilities, probabilities(original).probabilities
    )


def test_another_files_companion_is_refused(registry, with_companion):
    path, _ = with_companion
    data = bytearray(weights.companion(path).read_bytes())
    data[-1] ^= 1
    weights.companion(path).write_bytes(bytes(data))
    with pytest.warns(weights.ExtraMissing, match="its SHA-256 differs"):
        assert Classifier.load(registry, path).detector is None
    weights.companion(path).write_bytes(bytes(data[:-4]))
    with pytest.warns(weights.ExtraMissing, match="its size differs"):
        assert Classifier.load(registry, path).detector is None


def test_a_smaller_save_removes_the_earlier_companion(registry, with_companion, monkeypatch):
    path, classifier = with_companion
    monkeypatch.setattr(weights, "INLINE_BYTES", 1_000_000)
    weights.save(path, classifier.model, classifier.meta, weights.read_extra(path))
    assert not weights.companion(path).exists()
    assert Classifier.load(registry, path).detector is not None


def test_a_failed_save_keeps_the_file_and_its_companion(with_companion, monkeypatch):
    path, classifier = with_companion
    before = path.read_bytes(), weights.companion(path).read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(weights, "save_file", full_disk)
    with pytest.raises(OSError):
        weights.save(path, classifier.model, classifier.meta, weights.read_extra(path))
    assert (path.read_bytes(), weights.companion(path).read_bytes()) == before
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "big.safetensors",
        "big.safetensors.extra",
    ]


def test_a_file_written_before_keeps_loading(registry, lenet_weights, tmp_path):
    """Files from before the split kept the detector among the model's tensors, as `zoo.*`."""
    with safe_open(str(lenet_weights), framework="pt") as f:
        header = {k: v for k, v in f.metadata().items() if k != weights.EXTRA_KEY}
    state = load_file(lenet_weights)
    old = {weights.EXTRA + k: v for k, v in weights.read_extra(lenet_weights).items()}
    path = tmp_path / "old.safetensors"
    save_file(state | old, str(path), metadata=header)
    loaded, original = Classifier.load(registry, path), Classifier.load(registry, lenet_weights)
    assert loaded.detector is not None
    assert torch.equal(probabilities(loaded).unknown, probabilities(original).unknown)
    assert all(
        torch.equal(v, original.model.state_dict()[k]) for k, v in weights.read(path)[0].items()
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("[1]", "zoo_tensors must be"),
        ('{"companion": {"bytes": -1, "sha256": "x"}}', "zoo_tensors must be"),
        ('{"inline": "not base64!"}', "zoo_tensors.inline is not base64"),
        ('{"inline": "AAAA"}', "corrupt extra tensors"),
    ],
)
def test_a_hostile_extra_entry_is_one_line(registry, lenet_weights, tmp_path, entry, message):
    with safe_open(str(lenet_weights), framework="pt") as f:
        header = f.metadata() | {weights.EXTRA_KEY: entry}
    path = tmp_path / "hostile.safetensors"
    save_file(load_file(lenet_weights), str(path), metadata=header)
    with pytest.raises(ZooError, match=message):
        Classifier.load(registry, path)


def test_zoo_load_predicts_pil_images_arrays_and_paths(lenet_weights, tmp_path):
    classifier = zoo.load(lenet_weights)
    assert not classifier.model.training and classifier.classes == [str(d) for d in range(10)]
    ink = np.zeros((8, 8), np.uint8)
    ink[1:7, 3:5] = 255  # a one
    Image.fromarray(ink).save(tmp_path / "one.png")
    by_path = classifier.predict(tmp_path / "one.png")
    assert set(by_path.top) <= set(classifier.classes) and len(by_path.top) == 5
    assert by_path.label == next(iter(by_path.top))
    answers = classifier.predict(
        [Image.fromarray(ink), ink, ink / 255.0, str(tmp_path / "one.png")]
    )
    (_, from_cli), *_ = predict_files(classifier, [tmp_path / "one.png"])  # as `zoo predict`
    for answer in [*answers, from_cli]:  # the same, but for the float rounding of another batch
        assert list(answer.top) == list(by_path.top)
        assert answer.top == pytest.approx(by_path.top, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (torch.zeros(8, 8), "cannot classify a Tensor"),
        (np.zeros((2, 8, 8, 3), np.uint8), r"not \(2, 8, 8, 3\)"),
        (np.full((8, 8), 2.0), r"values in \[0, 1\]"),
        (np.zeros((8, 8), np.int64), "not int64"),
        ("nowhere.png", "nowhere.png: no such file"),
    ],
)
def test_zoo_load_refuses_what_is_no_image_in_one_line(lenet_weights, item, message):
    with pytest.raises(ZooError, match=message):
        zoo.load(lenet_weights).predict(item)


def test_list_models_and_a_models_spec():
    assert {"lenet", "resnet18", "vgg16"} <= set(zoo.list_models())
    assert zoo.list_models("res*") == ["resnet18"]
    assert zoo.model_spec("lenet").input.size == 32
    with pytest.raises(ZooError, match="did you mean 'lenet'"):
        zoo.model_spec("lenett")


def test_copying_only_the_weights_file_is_enough_for_a_small_model(
    registry, lenet_weights, tmp_path
):
    copy = tmp_path / "copy.safetensors"
    shutil.copy(lenet_weights, copy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Classifier.load(registry, copy).detector is not None
