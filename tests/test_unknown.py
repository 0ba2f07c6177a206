"""The "unknown" answer beyond digits: a LeNet really trained on Fashion-MNIST's garments (the
session's `fashion_weights`) flags photographs, their crops, digits, noise and blank images and
few of its own test images; the digits LeNet flags garments; a dark-on-white scan of a digit is
taken as a drawing is, never a confident wrong answer; the detector's views in the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from sklearn.datasets import load_digits as sklearn_digits

from tests.test_explain import unlike_digits
from zoo import weights
from zoo.data.sources import load_dataset
from zoo.errors import ZooError
from zoo.serving.inference import Classifier
from zoo.trust.unknown import IMAGE_VIEWS, UnknownDetector, background


@pytest.fixture(scope="module")
def garments(registry, fashion_weights) -> Classifier:
    return Classifier.load(registry, fashion_weights)


@pytest.fixture(scope="module")
def lenet(registry, lenet_weights) -> Classifier:
    return Classifier.load(registry, lenet_weights)


@pytest.fixture(scope="module")
def fashion_test(registry, fashion_weights):
    _, data = load_dataset(registry, "fashion-mnist", 28)
    return data


def unknown_rate(classifier: Classifier, images: list) -> float:
    """The share of `images` (PIL images, as predict and the demo take them) flagged."""
    inputs = [classifier.model_image(image) for image in images]
    return classifier.predict_batch(classifier.inputs(inputs)).unknown.float().mean().item()


def pictures(images: list[torch.Tensor]) -> list[Image.Image]:
    """uint8 (C, H, W) tensors as PIL images."""
    return [
        Image.fromarray(x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy())
        for x in images
    ]


def digit_pictures(count: int = 200) -> list[Image.Image]:
    """scikit-learn's 8x8 digits as images, light ink on black."""
    pixels = (sklearn_digits().images[:count] * 255 / 16).round().astype(np.uint8)
    return [Image.fromarray(a) for a in pixels]


def scans(count: int = 200) -> tuple[list[Image.Image], np.ndarray]:
    """Digits as a scanner gives them, and their labels: dark ink on grey-white paper (235,
    with noise), 8x enlarged, 24 pixels of paper around."""
    rng = np.random.default_rng(0)
    data = sklearn_digits()
    pages = []
    for ink in data.images[:count] / 16:
        page = np.full((112, 112), 235.0)
        page[24:88, 24:88] -= np.kron(ink, np.ones((8, 8))) * 215
        page += rng.normal(0, 4, page.shape)
        pages.append(Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)))
    return pages, data.target[:count]


def test_fashion_model_flags_what_is_unlike_garments_and_few_garments(garments, fashion_test):
    unlike = {k: pictures(v) for k, v in unlike_digits().items()}
    kinds = {
        "photographs and their crops": unlike["photographs"] + unlike["crops"],
        "digits": digit_pictures(),
        "noise": unlike["noise"],
        "blank": unlike["blank"],
    }
    for kind, images in kinds.items():
        assert unknown_rate(garments, images) >= 0.9, kind
    own = pictures(list(fashion_test.test_images[:2000]))
    assert unknown_rate(garments, own) <= 0.05
    assert garments.detector.background == "dark"
    assert set(garments.detector.views) == {"features", *IMAGE_VIEWS}


def test_digits_model_flags_garments(lenet, fashion_test):
    assert unknown_rate(lenet, pictures(list(fashion_test.test_images[:300]))) >= 0.9


def test_a_scanned_digit_is_read_as_a_drawing_or_flagged(lenet):
    """Dark ink on white paper reaches a light-on-dark model as its ink, light on black: the
    answers are the digits', and hardly any is a wrong answer given with no "unknown"."""
    pages, labels = scans()
    batch = lenet.inputs([lenet.model_image(page) for page in pages])
    found = lenet.predict_batch(batch)
    right = found.probabilities.argmax(1).numpy() == labels
    assert right.mean() >= 0.85
    assert (~right & ~found.unknown.numpy()).mean() <= 0.02
    raw = lenet.predict_batch(lenet.inputs([lenet.to_uint8(page) for page in pages]))
    assert (raw.probabilities.argmax(1).numpy() == labels).mean() < 0.5  # as it came: wrong


def test_background_of_datasets_and_uploads(lenet, fashion_test):
    assert background(fashion_test.train_images[:500]) == "dark"
    assert lenet.detector.background == "dark"
    photos = pictures(unlike_digits()["photographs"])
    assert [background(lenet.to_uint8(p)[None]) for p in photos] == [None, "dark"]  # no paper
    paper = [ImageOps.invert(image) for image in digit_pictures(20)]
    found = [background(lenet.to_uint8(p.resize((64, 64)))[None]) for p in scans(20)[0]]
    assert found == ["light"] * 20 and background(torch.zeros(0, 1, 8, 8)) is None
    assert sum(background(lenet.to_uint8(p)[None]) == "light" for p in paper) >= 10


def test_detector_views_are_stored_and_checked(fashion_weights):
    meta = weights.read_meta(fashion_weights)
    entry = meta["unknown"]
    assert entry["layer"] == "fc1" and set(entry["views"]) == set(IMAGE_VIEWS)
    tensors = weights.read_extra(fashion_weights)
    detector = UnknownDetector.from_file(meta, tensors)
    assert detector.views["pixels"].means.shape == (10, 256)  # 16 x 16 grey pixels
    assert detector.views["statistics"].means.shape == (10, 5)
    old = {k: v for k, v in entry.items() if k != "views"}  # a file from before the views
    assert set(UnknownDetector.from_file({"unknown": old}, tensors).views) == {"features"}
    broken = {**entry, "views": {"pixels": {"threshold": float("nan")}}}
    with pytest.raises(ZooError, match="pixels view has no finite threshold"):
        UnknownDetector.from_file({"unknown": broken}, tensors)
    tensors["unknown.statistics.precision"] = torch.eye(3)  # what from_file checks itself
    with pytest.raises(ZooError, match=r"statistics view has means \(10, 5\) and precision"):
        UnknownDetector.from_file(meta, tensors)


@pytest.mark.parametrize(("n", "d", "rank"), [(500, 20, 20), (60, 100, 100), (300, 40, 5)])
def test_ledoit_wolf_precision_is_scikit_learns(n, d, rank):
    from sklearn.covariance import LedoitWolf

    from zoo.trust.unknown import ledoit_wolf_precision

    generator = torch.Generator().manual_seed(n)
    x = torch.randn(n, rank, generator=generator) @ torch.randn(rank, d, generator=generator)
    x = x + 3  # not centred
    expected = torch.from_numpy(LedoitWolf().fit(x.double().numpy()).precision_)
    assert torch.allclose(ledoit_wolf_precision(x), expected, rtol=1e-6, atol=1e-8)
