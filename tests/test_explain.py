"""Why, and how sure: explanations checked by the deletion test, calibrated confidence, the
"unknown" answer and the error analysis, on a LeNet really trained on digits (the session's
`lenet_weights`, trained once) and on every built-in model family."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.malformed import overflowing
from zoo import weights
from zoo.data.digits import load_digits
from zoo.data.splits import hold_out
from zoo.serving.inference import Classifier
from zoo.trust.explain import FALLBACK, METHODS, deletion, explain, overlay


@pytest.fixture(scope="module")
def lenet(registry, lenet_weights) -> Classifier:
    return Classifier.load(registry, lenet_weights)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def unlike_digits() -> dict[str, list[torch.Tensor]]:
    """uint8 (C, H, W) images no digits model has seen: scikit-learn's two photographs,
    crops of them at many sizes, uniform and Gaussian noise, blank images of five greys."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    photos = [
        torch.from_numpy(p.copy()).permute(2, 0, 1).contiguous()
        for p in load_sample_images().images
    ]
    crops = []
    for photo in photos:
        height, width = photo.shape[1:]
        for _ in range(25):
            side = int(rng.integers(16, 240))
            top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
            crops.append(photo[:, top : top + side, left : left + side])
    noise = [torch.from_numpy(rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)) for _ in range(10)]
    noise += [
        torch.from_numpy(np.clip(rng.normal(128, 60, (1, 32, 32)), 0, 255).astype(np.uint8))
        for _ in range(10)
    ]
    blank = [torch.full((1, 32, 32), grey, dtype=torch.uint8) for grey in (0, 64, 128, 192, 255)]
    return {"photographs": photos, "crops": crops, "noise": noise, "blank": blank}


def test_default_map_passes_the_deletion_test_for_most_test_digits(lenet, digits):
    meta = lenet.meta["explain"]
    rates = meta["deletion_pass_rate"]
    assert set(rates) == set(METHODS) and meta["method"] == max(rates, key=rates.get)
    batch = lenet.inputs(list(digits.test_images[:300]))
    explanation = explain(lenet, batch)
    assert explanation.method == meta["method"]
    assert explanation.heatmaps.shape == (300, 32, 32)
    passed = deletion(lenet, batch, explanation.heatmaps).passed.float().mean().item()
    assert passed >= 0.8


def test_every_method_gives_unit_maps_at_the_input_size(lenet, digits):
    batch = lenet.inputs(list(digits.test_images[:4]))
    for method in METHODS:
        maps = explain(lenet, batch, method).heatmaps
        assert maps.shape == (4, 32, 32) and maps.min() >= 0 and maps.max() == 1
    view = Image.new("L", (64, 64))
    assert overlay(view, maps[0]).size == (64, 64)


def test_temperature_lowers_the_test_ece(zoo_cli, lenet_weights, tmp_path):
    result = zoo_cli(f"eval {lenet_weights} --json --out {tmp_path}")
    report = json.loads(result.out)
    calibration = report["calibration"]
    assert set(calibration) == {"temperature", "ece_before", "ece_after", "nll_before", "nll_after"}
    meta = weights.read_meta(lenet_weights)
    assert calibration["temperature"] == pytest.approx(meta["calibration"]["temperature"])
    assert calibration["temperature"] != 1.0
    assert calibration["ece_after"] <= calibration["ece_before"]
    assert calibration["nll_after"] <= calibration["nll_before"]


def test_unknown_for_photographs_noise_and_blanks_not_for_test_digits(lenet, digits):
    for kind, images in unlike_digits().items():
        unknown = lenet.predict_batch(lenet.inputs(images)).unknown.float().mean().item()
        assert unknown >= 0.9, kind
    test_digits = lenet.inputs(list(digits.test_images))
    known = lenet.predict_batch(test_digits).unknown.float().mean().item()
    assert known <= 0.05


def test_predict_probabilities_are_calibrated_and_match_probabilities_of(lenet, digits):
    batch = lenet.inputs(list(digits.test_images[:8]))
    predictions = lenet.predict_batch(batch)
    plain = lenet.model(batch).softmax(1)
    scaled = (lenet.model(batch) / lenet.temperature).softmax(1)
    assert torch.allclose(predictions.probabilities, scaled, atol=1e-6)
    assert not torch.allclose(predictions.probabilities, plain, atol=1e-3)
    assert torch.equal(lenet.probabilities_of(batch), predictions.probabilities)
    assert predictions.unknown.dtype == torch.bool and predictions.unknown.shape == (8,)


def test_zoo_predict_says_unknown(zoo_cli, lenet_weights, digits, tmp_path):
    from sklearn.datasets import load_sample_images

    Image.fromarray(load_sample_images().images[1]).save(tmp_path / "flower.jpg")
    Image.fromarray(digits.test_images[0, 0].numpy()).save(tmp_path / "digit.png")
    result = zoo_cli(f"predict {lenet_weights} {tmp_path} --json")
    answers = {json.loads(line)["path"]: json.loads(line) for line in result.out.splitlines()}
    assert answers[str(tmp_path / "flower.jpg")]["unknown"] is True
    assert answers[str(tmp_path / "digit.png")]["unknown"] is False
    table = zoo_cli(f"predict {lenet_weights} {tmp_path}").out
    assert "unknown" in table.splitlines()[0] and "yes" in table


def test_eval_error_analysis_and_figures(zoo_cli, lenet_weights, tmp_path):
    report = json.loads(zoo_cli(f"eval {lenet_weights} --json --out {tmp_path}").out)
    scores = report["per_class_scores"]
    assert [row["class"] for row in scores] == report["classes"]
    for row, recall in zip(scores, report["per_class"], strict=True):
        assert row["recall"] == pytest.approx(recall)
        assert 0 <= row["precision"] <= 1 and 0 <= row["f1"] <= 1
    confusion = np.array(report["confusion"])
    for pair in report["confused_pairs"]:
        true = report["classes"].index(pair["true"])
        predicted = report["classes"].index(pair["predicted"])
        assert confusion[true, predicted] == pair["count"] > 0 and true != predicted
    losses = [row["loss"] for row in report["top_losses"]]
    assert len(losses) == 16 and losses == sorted(losses, reverse=True)
    assert sorted(report["figures"]) == sorted(
        str(tmp_path / name) for name in ("eval-test-reliability.png", "eval-test-top-losses.png")
    )
    assert all(Image.open(path).size[0] > 300 for path in report["figures"])
    text = zoo_cli(f"eval {lenet_weights} --out {tmp_path} --deletion").out
    assert "precision" in text and "ECE" in text and "pass the deletion test" in text


def test_zoo_explain_writes_a_png_per_image_and_json(zoo_cli, lenet_weights, digits, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(digits.test_images[i, 0].numpy()).save(images / f"d{i}.png")
    out = tmp_path / "maps"
    result = zoo_cli(f"explain {lenet_weights} {images} --out {out} --json --method saliency")
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [r["path"] for r in records] == [str(images / f"d{i}.png") for i in range(3)]
    for record in records:
        heatmap = np.array(record["heatmap"])
        assert heatmap.shape == (32, 32) and heatmap.min() >= 0 and heatmap.max() <= 1
        assert record["method"] == "saliency" and record["top"][0]["probability"] > 0
        assert set(record["deletion"]) == {"score", "random", "passed"}
    assert sorted(p.name for p in out.iterdir()) == ["d0.png", "d1.png", "d2.png"]
    table = zoo_cli(f"explain {lenet_weights} {images / 'd0.png'} --out {out}").out
    assert "deletion" in table and "random" in table


def test_an_answer_that_is_not_finite_is_skipped_and_explains_nothing(
    zoo_cli, lenet_weights, digits, tmp_path
):
    overflow = tmp_path / "overflow.safetensors"
    overflowing(lenet_weights, overflow)
    image = tmp_path / "d0.png"
    Image.fromarray(digits.test_images[0, 0].numpy()).save(image)
    result = zoo_cli(f"explain {overflow} {image} --out {tmp_path / 'maps'}")
    assert result.code == 1 and "Traceback" not in result.err
    assert f"skipped {image}: the model's answer is not a finite number" in result.err
    assert "none of the 1 images could be explained" in result.err
    assert not (tmp_path / "maps").exists()


def test_bad_method_is_one_line(zoo_cli, lenet_weights, tmp_path):
    image = tmp_path / "x.png"
    Image.new("L", (8, 8)).save(image)
    result = zoo_cli(f"explain {lenet_weights} {image} --method lime --out {tmp_path / 'o'}")
    assert result.code == 1 and "unknown explanation method 'lime'" in result.err
    assert not (tmp_path / "o").exists()


PLUGIN = """
import torch
from torch import nn
import zoo


@zoo.hookimpl
def zoo_models():
    return [zoo.ModelSpec(name="flat-mlp", summary="an MLP", head="2",
                          input=zoo.InputSpec(channels=1, size=8))]


@zoo.hookimpl
def zoo_build(spec, num_classes, pretrained):
    if spec.name == "flat-mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Linear(32, num_classes))
"""


def test_a_plugin_without_a_target_layer_gets_a_clear_message(zoo_cli, tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "flat.py").write_text(PLUGIN)
    from torch import nn

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Linear(32, 3))
    meta = {"model": "flat-mlp", "classes": ["a", "b", "c"], "input": {"channels": 1, "size": 8}}
    meta["input"] |= {"mean": [0.5], "std": [0.5]}
    weights.save(tmp_path / "mlp.safetensors", model, meta)
    Image.new("L", (8, 8), 200).save(tmp_path / "x.png")
    base = f"--plugins-dir {tmp_path / 'plugins'} explain {tmp_path / 'mlp.safetensors'}"
    result = zoo_cli(f"{base} {tmp_path / 'x.png'} --method gradcam --out {tmp_path / 'o'}")
    assert result.code == 1 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "no layer with a spatial output for Grad-CAM; set cam_layer" in result.err
    assert not (tmp_path / "o").exists()
    plain = zoo_cli(f"{base} {tmp_path / 'x.png'} --out {tmp_path / 'o'} --json")
    assert plain.code == 0 and json.loads(plain.out)["method"] == FALLBACK


@pytest.mark.parametrize(
    "name",
    [
        "lenet",
        "cifar-cnn",
        "resnet18",
        "vgg16",
        "timm/mobilenetv3_small_100",
        "timm/vit_tiny_patch16_224",
    ],
)
def test_every_family_explains(registry, name):
    spec = registry.model(name)
    model = registry.build(spec, num_classes=3).eval()
    classifier = Classifier(None, model, {"model": name}, spec.input, ["a", "b", "c"], spec)
    generator = torch.Generator().manual_seed(0)
    size, channels = spec.input.size, spec.input.channels
    images = [torch.randint(0, 256, (channels, size, size), generator=generator, dtype=torch.uint8)]
    batch = classifier.inputs(images)
    for method in ("gradcam", "saliency"):
        maps = explain(classifier, batch, method).heatmaps
        assert maps.shape == (1, size, size) and maps.min() >= 0 and maps.max() <= 1
        assert torch.isfinite(maps).all(), method
    assert maps.max() == 1  # saliency: a random model's gradients are not all zero


def test_old_files_load_with_no_temperature_and_no_detector(registry, tmp_path, digits):
    spec = registry.model("lenet")
    meta = {"model": "lenet", "classes": [str(i) for i in range(10)], "input": spec.input.to_dict()}
    weights.save(tmp_path / "old.safetensors", registry.build(spec, num_classes=10), meta)
    classifier = Classifier.load(registry, tmp_path / "old.safetensors")
    batch = classifier.inputs(list(digits.test_images[:3]))
    predictions = classifier.predict_batch(batch)
    assert classifier.temperature == 1.0 and classifier.detector is None
    assert not predictions.unknown.any()
    assert explain(classifier, batch).method == FALLBACK


def test_held_out_part_is_stratified_disjoint_and_fixed(digits, lenet_weights):
    rest, images, labels = hold_out(digits)
    assert len(labels) == round(0.1 * len(digits.train_labels)) == 144
    assert len(rest.train_labels) + len(labels) == len(digits.train_labels)
    assert torch.bincount(labels).min() >= 13  # every digit, about equally
    again = hold_out(digits)[1]
    assert torch.equal(images, again)
    held = {bytes(image.numpy()) for image in images}
    assert not held & {bytes(image.numpy()) for image in rest.train_images}
    metrics = weights.read_meta(lenet_weights)["metrics"]
    assert metrics["train_images"] == len(rest.train_labels)
    assert metrics["held_out_images"] == 144


def test_train_writes_the_reliability_diagram_and_gallery(zoo_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_RUNS_DIR", str(tmp_path / "runs"))
    result = zoo_cli(f"train lenet --epochs 1 --limit 300 --out {tmp_path} -q")
    assert result.code == 0, result.err
    run = tmp_path / "runs" / "lenet-digits"
    names = {p.name for p in run.iterdir()}
    assert {"test-confusion.png", "test-reliability.png", "test-top-losses.png"} <= names
    meta = weights.read_meta(tmp_path / "lenet-digits.safetensors")
    assert meta["unknown"]["layer"] == "fc1" and meta["unknown"]["held_out_images"] == 30


@pytest.mark.parametrize(("shape", "grey"), [((3, 1, 8, 8), True), ((10, 3, 224, 160), False)])
def test_the_top_loss_gallery_places_every_image_at_its_cell(tmp_path, shape, grey):
    """Small grey images scaled up pixel-sharp, large colour ones down, each in its own cell
    under its caption: the PNG is the cells' size, and each cell's image shows there."""
    from zoo.trust import analysis

    n = shape[0]
    images = torch.zeros(shape, dtype=torch.uint8)
    images[1::2] = 255  # every other image white, so its tile is found by colour
    if grey:  # the first white one a checkerboard instead: scaled up, it must stay two-valued
        images[1, 0] = torch.tensor([[(r + c) % 2 * 255 for c in range(8)] for r in range(8)])
    probabilities = torch.full((n, 2), 0.5)
    path = analysis.plot_top_losses(
        tmp_path / "g.png", images, torch.zeros(n, dtype=torch.long), probabilities, ["a", "b"], "t"
    )
    picture = np.asarray(Image.open(path).convert("L"))
    columns, rows = min(8, n), -(-n // 8)
    width, height, band = analysis.CELL
    assert picture.shape == (rows * height + band, columns * width)
    for i in range(n):
        row, column = divmod(i, columns)
        # the middle of the image's place: under the caption, centred in the cell
        tile_h = round(analysis.TILE * shape[2] / max(shape[2:]))
        y = band + row * height + analysis.CAPTION + tile_h // 2
        x = column * width + width // 2
        if not (grey and i == 1):
            assert picture[y, x] == (255 if i % 2 else 0), (i, picture[y, x])
    if grey:  # 8 px at 140: blocks of black and white, no interpolated grey between them
        top = band + analysis.CAPTION
        board = picture[top : top + analysis.TILE, width + 10 : width + 150]  # image 1's tile
        assert set(np.unique(board).tolist()) == {0, 255}
