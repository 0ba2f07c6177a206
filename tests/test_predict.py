"""`zoo predict` over real image files and folders, and ImageNet weights exported from
torchvision's cache classifying real photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo import weights
from zoo.data.digits import load_digits
from zoo.serving.imagenet import imagenet_classes

DIGITS = 40


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    """Real digits test images as PNGs named `<index>-<label>.png`, half in a subfolder."""
    folder = tmp_path_factory.mktemp("digits")
    (folder / "more").mkdir()
    data = load_digits()
    for i in range(DIGITS):
        where = folder / "more" if i % 2 else folder
        pixels = data.test_images[i, 0].numpy()
        Image.fromarray(pixels).save(where / f"{i:02d}-{int(data.test_labels[i])}.png")
    return folder


def json_lines(result) -> list[dict]:
    assert result.code == 0, result.err
    return [json.loads(line) for line in result.out.splitlines()]


def one_line_error(result) -> str:
    assert result.code == 1, (result.out, result.err)
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    return result.err


def test_folder_recursive_json_lines(zoo_cli, lenet_weights, digits_folder):
    lines = json_lines(zoo_cli(["predict", str(lenet_weights), str(digits_folder), "--json"]))
    assert len(lines) == DIGITS
    assert sum("/more/" in line["path"] for line in lines) == DIGITS // 2
    correct = 0
    for line in lines:
        probabilities = [t["probability"] for t in line["top"]]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-5
        correct += line["top"][0]["label"] == Path(line["path"]).stem.split("-")[1]
    assert correct / DIGITS >= 0.85  # the fixture's LeNet scores about 95% on these


def test_batch_size_does_not_change_the_answers(zoo_cli, lenet_weights, digits_folder):
    args = ["predict", str(lenet_weights), str(digits_folder), "--json", "-k", "3"]
    one = json_lines(zoo_cli([*args, "--batch-size", "1"]))
    seven = json_lines(zoo_cli([*args, "--batch-size", "7"]))
    assert [line["path"] for line in one] == [line["path"] for line in seven]
    for a, b in zip(one, seven, strict=True):
        assert [t["label"] for t in a["top"]] == [t["label"] for t in b["top"]]
        p, q = ([t["probability"] for t in line["top"]] for line in (a, b))
        assert np.allclose(p, q, atol=1e-5)


def test_files_as_a_table(zoo_cli, lenet_weights, digits_folder, monkeypatch):
    monkeypatch.chdir(digits_folder)  # names short enough for the table's 80 columns
    files = sorted(Path().glob("*.png"))[:2]
    result = zoo_cli(["predict", str(lenet_weights), *map(str, files), "--top-k", "2"])
    assert result.code == 0, result.err
    header, *rows = result.out.splitlines()
    assert header.split() == ["image", "unknown", "#1", "#2"]
    assert len(rows) == 2 and all(str(f) in row for f, row in zip(files, rows, strict=True))
    assert all(row.count("%") == 2 for row in rows)


def test_unreadable_images_are_skipped_and_counted(zoo_cli, lenet_weights, digits_folder, tmp_path):
    for image in sorted(digits_folder.glob("*.png"))[:3]:
        (tmp_path / image.name).write_bytes(image.read_bytes())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    (tmp_path / "notes.txt").write_text("not an image, and not named like one")
    result = zoo_cli(["predict", str(lenet_weights), str(tmp_path), "--json"])
    assert len(json_lines(result)) == 3
    assert "warning: skipped " in result.err and "broken.png: " in result.err
    assert result.err.rstrip().endswith("skipped 1 unreadable of 4 images")
    assert "notes.txt" not in result.err

    only_broken = zoo_cli(["predict", str(lenet_weights), str(tmp_path / "broken.png")])
    assert "none of the 1 images could be read" in only_broken.err and only_broken.code == 1


def test_bad_paths_and_weights(zoo_cli, registry, lenet_weights, digits_folder, tmp_path):
    image = str(next(digits_folder.glob("*.png")))
    missing = one_line_error(zoo_cli(["predict", str(lenet_weights), str(tmp_path / "nope")]))
    assert "no such file or folder" in missing
    empty = one_line_error(zoo_cli(["predict", str(lenet_weights), str(tmp_path)]))
    assert "no image files" in empty
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"garbage" * 10)
    assert "not a valid safetensors file" in one_line_error(
        zoo_cli(["predict", str(corrupt), image])
    )
    wrong = tmp_path / "wrong-classes.safetensors"
    meta = weights.read_meta(lenet_weights) | {"classes": ["a", "b"]}
    weights.save(wrong, registry.build(registry.model("lenet"), num_classes=10), meta)
    message = one_line_error(zoo_cli(["predict", str(wrong), image]))
    assert "classes has 2 names but the head (fc3) has 10 outputs" in message
    assert "--top-k" in one_line_error(zoo_cli(["predict", str(lenet_weights), image, "-k", "0"]))


def test_pretrained_imagenet_weights_from_the_torchvision_cache(
    zoo_cli, tmp_path, monkeypatch, sample_photos
):
    from torchvision.models import ResNet18_Weights, resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    state = resnet18().state_dict()
    torch.save(state, checkpoints / "resnet18-f37072fd.pth")

    out = tmp_path / "resnet18-imagenet.safetensors"
    result = zoo_cli(["export", "resnet18", "--pretrained", "--out", str(out)])
    assert result.code == 0, result.err
    saved, meta = weights.read(out)
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert meta["classes"] == categories and len(categories) == 1000
    assert imagenet_classes() == categories  # the copy zoo keeps, to start without torchvision
    assert meta["model"] == "resnet18" and meta["dataset"] == "imagenet"
    assert all(torch.equal(saved[key], value) for key, value in state.items())

    result = zoo_cli(["predict", str(out), str(sample_photos), "--json", "--top-k", "3"])
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [Path(line["path"]).name for line in lines] == ["china.jpg", "flower.jpg"]
    for line in lines:
        assert len(line["top"]) == 3 and all(t["label"] in categories for t in line["top"])

    error = one_line_error(zoo_cli(["export", "lenet", "--pretrained"]))
    assert "no ImageNet classifier" in error and "resnet18" in error


def test_a_drawing_reaches_the_model_as_its_training_digits_did(registry, lenet_weights):
    """The weights file records that digits were stored at 8x8: a digit drawn 35x larger is
    reduced to 8x8 before the model's upscaling (`at_source`), so the model sees the pixels of
    its training images and answers as it does for them; an upload is only resized."""
    from zoo.serving.inference import Classifier

    classifier = Classifier.load(registry, lenet_weights)
    assert classifier.meta["source_size"] == 8
    data = load_digits()
    small = [Image.fromarray(d[0].numpy()) for d in data.test_images[:100]]
    large = [im.resize((280, 280), Image.Resampling.NEAREST) for im in small]
    native = [classifier.model_image(im) for im in small]
    native = classifier.predict_batch(classifier.inputs(native))
    drawn = [classifier.model_image(im, at_source=True) for im in large]
    enlarged = classifier.predict_batch(classifier.inputs(drawn))
    agree = native.probabilities.argmax(1) == enlarged.probabilities.argmax(1)
    assert agree.float().mean() >= 0.98
    assert enlarged.unknown.float().mean() <= native.unknown.float().mean() + 0.02
    upload = classifier.model_image(large[0])
    assert upload.shape == (1, 28, 28) and not torch.equal(upload, drawn[0])  # inside the border


def test_a_garment_is_served_as_it_was_trained_inside_the_border(registry, fashion_weights):
    """LeNet frames its image: a 28-pixel garment reaches the model unresized at inference, as
    in training (resized to 32 and back, it was blurred: 8.6% of test garments were then
    flagged unknown, 1.2% as trained)."""
    from zoo.data.preprocess import prepare
    from zoo.data.sources import load_dataset
    from zoo.serving.inference import Classifier

    classifier = Classifier.load(registry, fashion_weights)
    assert classifier.input.border == 2
    images = load_dataset(registry, "fashion-mnist", 28, None)[1].test_images[:50]
    served = classifier.inputs(
        [classifier.model_image(Image.fromarray(i[0].numpy())) for i in images]
    )
    assert torch.equal(served, prepare(images, classifier.input))
