"""A weights header is checked before it is believed: each malformed file (the hostile and
damaged headers of issue 18) is refused in one line naming the file and the field by every
command that reads weights (predict, explain, eval, export, train --init-from), before any
model is built from it; the budget refuses a large model without allocating it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.malformed import CASES, write_malformed
from zoo.errors import ZooError
from zoo.serving.inference import Classifier
from zoo.weights import check_file


@pytest.fixture(scope="module")
def malformed(tmp_path_factory, lenet_weights) -> dict[str, Path]:
    """A LeNet weights file per case, its header or tensors changed."""
    return write_malformed(tmp_path_factory.mktemp("malformed"), lenet_weights)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "digit.png"
    Image.new("L", (8, 8), 128).save(path)
    return path


def command(name: str, weights: Path, image: Path, out: Path) -> list[str]:
    return {
        "predict": ["predict", str(weights), str(image)],
        "explain": ["explain", str(weights), str(image), "--out", str(out)],
        "eval": ["eval", str(weights), "--out", str(out)],
        "export": ["export", str(weights), "--out", str(out / "x.safetensors")],
        "init-from": ["train", "lenet", "--init-from", str(weights), "--out", str(out), "-q"],
    }[name]


@pytest.mark.parametrize("name", ["predict", "explain", "eval", "export", "init-from"])
def test_each_malformed_header_is_refused_in_one_line(zoo_cli, malformed, image, tmp_path, name):
    for case, path in malformed.items():
        out = tmp_path / case
        result = zoo_cli(command(name, path, image, out))
        assert result.code == 1 and result.err.count("\n") == 1, (case, result.err)
        assert result.err.startswith(f"error: {path}"), (case, result.err)
        assert re.search(CASES[case][1], result.err), (case, result.err)
        assert not out.exists(), case  # a failed command writes nothing


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_refused_before_anything_is_built(registry, malformed):
    """The checks run on the header and on the meta device: a claimed input of 100,000
    pixels, a million classes or ViT-Large's name cost no allocation."""
    before = _rss_mb()
    for case in ("size-100000", "size-12000", "million-classes", "vit-over-lenet", "size-64"):
        with pytest.raises(ZooError):
            Classifier.load(registry, malformed[case])
    assert _rss_mb() - before < 200  # the million names' JSON is most of it


def test_a_model_above_the_budget_is_refused_on_the_meta_device(registry, malformed):
    before = _rss_mb()
    with pytest.raises(ZooError, match=r"has 303M parameters, above this demo's budget of 200M"):
        Classifier.load(registry, malformed["vit-over-lenet"], max_parameters=200_000_000)
    assert _rss_mb() - before < 50  # building ViT-Large for real takes 1.2 GB


def test_a_good_file_passes(registry, lenet_weights):
    checked = check_file(registry, lenet_weights)
    assert checked.spec.name == "lenet" and checked.parameters == 61_706
    classifier = Classifier.load(registry, lenet_weights)
    x = classifier.inputs([torch.zeros(1, 8, 8, dtype=torch.uint8)])
    assert torch.isfinite(classifier.predict_batch(x).probabilities).all()
