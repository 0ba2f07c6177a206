"""The demo app through gradio_client, served in-process: every tab's endpoint, batching, and
each kind of bad input answered with a clear message while the server keeps serving."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw

from zoo.demo import cards
from zoo.demo.shelf import IMAGENET_RESNET18, WeightsShelf
from zoo.serving.inference import Classifier

LENET = "lenet-digits.safetensors"


@pytest.fixture(scope="module")
def client(demo_server) -> Client:
    return Client(demo_server.url, verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory, demo_server) -> dict[str, Path]:
    """Real image files in the modes and states users send, made from sklearn's flower photo."""
    folder = tmp_path_factory.mktemp("uploads")
    photo = Image.open(demo_server.examples_dir / "flower.png")
    digit = Image.open(demo_server.examples_dir / "digits-3.png")
    paths = {name: folder / name for name in ("rgba.png", "palette.png", "16bit.png", "cmyk.jpg")}
    photo.convert("RGBA").save(paths["rgba.png"])
    photo.convert("P").save(paths["palette.png"])
    Image.fromarray(np.asarray(digit).astype(np.uint16) * 257).save(paths["16bit.png"])
    photo.convert("CMYK").save(paths["cmyk.jpg"])
    jpeg = folder / "full.jpg"
    photo.save(jpeg, quality=90)
    paths["truncated.jpg"] = folder / "truncated.jpg"
    paths["truncated.jpg"].write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    paths["notes.png"] = folder / "notes.png"
    paths["notes.png"].write_text("not an image at all\n" * 20)
    paths["empty.png"] = folder / "empty.png"
    paths["empty.png"].write_bytes(b"")
    paths["huge.png"] = folder / "huge.png"
    Image.new("L", (10_000, 10_000)).save(paths["huge.png"])
    return paths


def predict(client: Client, image: Path, weights: str = LENET) -> dict:
    return client.predict(weights, handle_file(image), api_name="/predict")


def test_named_endpoints(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    expected = {"/predict", "/classify", "/classify_drawing", "/inspect", "/gradient", "/backprop"}
    expected |= {"/explain", "/compare"}
    assert expected <= set(endpoints)


def test_predict_agrees_with_the_library(client, demo_server, registry):
    classifier = Classifier.load(registry, demo_server.weights_dir / LENET)
    for digit in range(10):
        path = demo_server.examples_dir / f"digits-{digit}.png"
        label = predict(client, path)
        image = classifier.model_image(Image.open(path))
        expected = classifier.top(classifier.probabilities([image])[0])
        assert [c["label"] for c in label["confidences"]] == list(expected)
        assert [c["confidence"] for c in label["confidences"]] == pytest.approx(
            list(expected.values()), abs=1e-5
        )


def test_classify_shows_the_model_view_and_latency(client, demo_server):
    label, view, latency = client.predict(
        LENET, handle_file(demo_server.examples_dir / "digits-0.png"), api_name="/classify"
    )
    assert len(label["confidences"]) == 5
    seen = Image.open(view)
    assert seen.mode == "L" and seen.size == (224, 224)  # LeNet's 32x32 input, 7x per pixel
    pixels = np.asarray(seen)[::7, ::7]
    assert pixels.max() > 200 and pixels.min() < 50  # a light digit on black, as in training
    pattern = r"[\d.]+ ms in all; the forward pass took [\d.]+ ms for a batch of \d+"
    assert re.fullmatch(pattern, latency)


def test_drawing_is_classified(client, tmp_path):
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).line([(140, 40), (140, 240)], fill="black", width=32)  # the brush
    canvas.save(tmp_path / "one.png")
    sketch = {"background": None, "layers": [], "composite": handle_file(tmp_path / "one.png")}
    label, view, _ = client.predict(LENET, sketch, api_name="/classify_drawing")
    assert label["label"] in [str(d) for d in range(10)]
    seen = np.asarray(Image.open(view))
    assert seen[112, 112] > 120 and seen[5, 5] < 30  # inverted: light stroke, dark margin


@pytest.mark.parametrize("composite", ["blank", None])
def test_empty_sketchpad(client, tmp_path, composite):
    if composite:
        Image.new("RGB", (280, 280), "white").save(tmp_path / "blank.png")
        composite = handle_file(tmp_path / "blank.png")
    sketch = {"background": None, "layers": [], "composite": composite}
    with pytest.raises(AppError, match="the sketchpad is empty: draw a digit first"):
        client.predict(LENET, sketch, api_name="/classify_drawing")


@pytest.mark.parametrize("name", ["rgba.png", "palette.png", "16bit.png", "cmyk.jpg"])
def test_unusual_modes_classify(client, files, name):
    label = predict(client, files[name])
    assert label["label"] in [str(d) for d in range(10)]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("notes.png", "notes.png: not an image file"),
        ("empty.png", "empty.png: not an image file"),
        ("truncated.jpg", r"truncated.jpg: cannot read image \(truncated data\)"),
        ("huge.png", r"huge.png: 10000x10000 is too large \(more than 50,000,000 pixels\)"),
    ],
)
def test_bad_image_gives_a_clear_message(client, demo_server, files, name, message):
    with pytest.raises(AppError, match=message) as error:
        predict(client, files[name])
    assert "/" not in str(error.value)  # the upload's name, not the server's path to it
    assert predict(client, demo_server.examples_dir / "digits-5.png")["label"]  # still serving


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("corrupt.safetensors", "corrupt.safetensors: not a valid safetensors file"),
        ("unicorn.safetensors", "needs model 'acme/unicorn' \\(plugin acme-zoo-models\\)"),
        ("missing.safetensors", "no weights file 'missing.safetensors'"),
        ("../weights/x.safetensors", "no weights file"),
    ],
)
def test_bad_weights_give_a_clear_message(client, demo_server, weights, message):
    with pytest.raises(AppError, match=message):
        predict(client, demo_server.examples_dir / "digits-1.png", weights)
    assert predict(client, demo_server.examples_dir / "digits-1.png")["label"]


def test_uploads_are_capped(client, demo_server, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (11 * 1024 * 1024))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        predict(client, big)  # the client reads the cap from the app's config
    response = httpx.post(
        f"{demo_server.url}gradio_api/upload", files={"files": ("big.png", big.read_bytes())}
    )
    assert response.status_code == 413  # and the server enforces it
    assert predict(client, demo_server.examples_dir / "digits-2.png")["label"]


def test_imagenet_resnet18_from_the_torch_cache(client, demo_server):
    from torchvision.models import ResNet18_Weights

    label = predict(client, demo_server.examples_dir / "china.png", IMAGENET_RESNET18)
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert len(label["confidences"]) == 5
    assert all(c["label"] in categories for c in label["confidences"])


def test_concurrent_requests_share_a_forward_pass(demo_server):
    image = demo_server.examples_dir / "digits-4.png"

    def classify(_: int) -> list[str]:
        client = Client(demo_server.url, verbose=False)
        return [client.predict(LENET, handle_file(image), api_name="/classify")[2] for _ in "abc"]

    with ThreadPoolExecutor(8) as pool:
        latencies = [text for texts in pool.map(classify, range(8)) for text in texts]
    sizes = [int(re.search(r"batch of (\d+)", text).group(1)) for text in latencies]
    assert max(sizes) > 1


def test_choices_describe_each_file(demo_server, registry, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(demo_server.torch_home))
    choices = dict(WeightsShelf(registry, demo_server.weights_dir).choices())
    lenet = next(label for label, value in choices.items() if value == LENET)
    assert re.fullmatch(
        rf"{LENET}: lenet on digits \(0, 1, 2, 3, 4, 5, 6, 7, 8, 9\), test accuracy [\d.]+%", lenet
    )
    assert any(v == IMAGENET_RESNET18 for v in choices.values())
    unusable = next(label for label, value in choices.items() if value == "corrupt.safetensors")
    assert "unusable" in unusable
    monkeypatch.setenv("TORCH_HOME", str(demo_server.torch_home / "empty"))
    choices = dict(WeightsShelf(registry, demo_server.weights_dir).choices())
    assert IMAGENET_RESNET18 not in choices.values()


def test_backprop_oranges(client):
    total, d_quantity, d_price, d_tax, picture, graph, chain = client.predict(
        2, 100, 1.1, api_name="/backprop"
    )
    assert (total, d_quantity, d_price, d_tax) == pytest.approx((220, 110, 2.2, 200))
    assert "d total / d price = 2.2" in picture
    assert graph.count(">MulBackward0</text>") == 2 and ">quantity</text>" in graph
    assert "= 1 x 1.1 x 100 = <b>110</b>" in chain and "= 1 x 200 = <b>200</b>" in chain
    assert client.predict(3, 50, 1.0, api_name="/backprop")[:4] == pytest.approx((150, 50, 3, 150))


def test_inspect_lenet_as_the_tutorial(client):
    tree, table, summary, graph, parameters = client.predict("lenet", api_name="/inspect")
    assert "(conv1): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))" in tree
    shapes = [row[1] for row in table["data"]]
    assert shapes[:2] == ["[6, 1, 5, 5]", "[6]"] and len(shapes) == 10
    assert summary.startswith("10 parameter tensors")
    assert parameters["value"] == "conv1.weight" and len(parameters["choices"]) == 10
    assert graph.startswith('<figure class="graph-view">') and "26 nodes" in graph
    assert ">conv1.weight 6x1x5x5</text>" in graph and ">MseLossBackward0</text>" in graph
    before, after, note = client.predict("lenet", "conv1.bias", api_name="/gradient")
    assert Image.open(before).size[0] > 250 and Image.open(after).size[0] > 250
    assert "every one of its 6 values was 0" in note and "L2 norm is 0." in note


def test_unknown_model_in_inspect(client):
    with pytest.raises(AppError, match="^no model 'lenett': choose one from the list$"):
        client.predict("lenett", api_name="/inspect")


def test_cards(registry, demo_server, tmp_path):
    runs = tmp_path / "runs"
    shelf = WeightsShelf(registry, demo_server.weights_dir)
    card = cards.card(registry, shelf, demo_server.weights_dir / LENET, runs)
    assert "<th>parameters</th><td>61,706</td>" in card.html
    assert re.search(r"<th>test accuracy</th><td>\d+\.\d\d% \(chance: 10.0%\)", card.html)
    assert "<th>epochs</th><td>3</td>" in card.html and "device" not in card.html
    assert card.figures == [] and card.warning is None
    (runs / "lenet-digits").mkdir(parents=True)
    for name in ("test-reliability.png", "test-confusion.png", "curves.png"):
        Image.new("RGB", (40, 30)).save(runs / "lenet-digits" / name)
    shown = cards.card(registry, shelf, demo_server.weights_dir / LENET, runs).figures
    assert [(path.name, caption) for path, caption in shown] == [
        ("curves.png", "Training curves"),
        ("test-confusion.png", "Confusion matrix (test split)"),
        ("test-reliability.png", "Reliability diagram (test split)"),
    ]
    corrupt = cards.card(registry, shelf, demo_server.weights_dir / "corrupt.safetensors", runs)
    assert "Unusable" in corrupt.html
    unicorn = cards.card(registry, shelf, demo_server.weights_dir / "unicorn.safetensors", runs)
    assert "Unusable" in unicorn.html and "which no installed plugin provides" in unicorn.html


def test_examples_are_the_test_split_digits_and_sample_photos(registry, demo_server):
    from sklearn.datasets import load_sample_images

    digits = registry.dataset("digits")[0].load(root=None, download=False)
    for label in range(10):
        shown = np.asarray(Image.open(demo_server.examples_dir / f"digits-{label}.png"))
        matches = (digits.test_images[:, 0].numpy() == shown).all(axis=(1, 2))
        assert matches.any() and (digits.test_labels.numpy()[matches] == label).all()
    photos = load_sample_images()
    for path, photo in zip(photos.filenames, photos.images, strict=True):
        name = Path(path).stem + ".png"
        assert (np.asarray(Image.open(demo_server.examples_dir / name)) == photo).all()


def test_explain_gives_the_top_classes_and_where_the_model_looked(client, demo_server, registry):
    digit = demo_server.examples_dir / "digits-7.png"
    label, looked = client.predict(LENET, handle_file(digit), api_name="/explain")
    expected = predict(client, digit)
    assert label["label"] == expected["label"] and len(label["confidences"]) == 5
    picture = Image.open(looked)
    assert picture.mode == "RGB" and picture.size[0] >= 224  # the heat map over the model's view
    with pytest.raises(AppError, match="no weights file 'nope.safetensors'"):
        client.predict("nope.safetensors", handle_file(digit), api_name="/explain")


def test_compare_answers_with_every_model(client, demo_server):
    table, heatmaps = client.predict(
        handle_file(demo_server.examples_dir / "flower.png"), api_name="/compare"
    )
    rows = {row[0]: row for row in table["data"]}
    assert table["headers"] == [
        "weights file",
        "model",
        "answer",
        "confidence %",
        "unknown",
        "latency ms",
    ]
    lite0 = "imagenet/timm/tf_efficientnet_lite0"  # its weights ship with the package
    assert set(rows) == {
        LENET,
        "corrupt.safetensors",
        "unicorn.safetensors",
        IMAGENET_RESNET18,
        lite0,
    }
    _, model, answer, confidence, unknown, latency = rows[LENET]
    assert model == "lenet" and answer in [str(d) for d in range(10)]
    assert 0 < confidence <= 100 and unknown in (True, False) and latency > 0
    assert rows["corrupt.safetensors"][2].startswith("unusable: ")
    assert "no installed plugin" in rows["unicorn.safetensors"][2]
    captions = [item["caption"] for item in heatmaps]  # one heat map per usable model
    imagenet = [IMAGENET_RESNET18, lite0]
    assert captions == [f"{LENET}: {answer}", *(f"{name}: {rows[name][2]}" for name in imagenet)]


def test_compare_keeps_the_intake_checks(client, files):
    for name, message in (
        ("notes.png", "notes.png: not an image file"),
        ("huge.png", "huge.png: 10000x10000 is too large"),
    ):
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(files[name]), api_name="/compare")


def test_the_default_model_is_the_most_accurate(demo_server, registry, monkeypatch, tmp_path):
    import shutil

    from zoo import weights

    monkeypatch.setenv("TORCH_HOME", str(demo_server.torch_home))
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(demo_server.weights_dir / LENET, folder / "b-good.safetensors")
    lenet = Classifier.load(registry, folder / "b-good.safetensors")
    meta = {**lenet.meta, "metrics": {**lenet.meta["metrics"], "test_accuracy": 0.19}}
    weights.save(folder / "a-weak.safetensors", lenet.model, meta)
    (folder / "0-corrupt.safetensors").write_bytes(b"nonsense")
    shelf = WeightsShelf(registry, folder)
    assert shelf.default() == "b-good.safetensors"  # not the alphabetically first
