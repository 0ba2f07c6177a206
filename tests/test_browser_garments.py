"""The demo beyond digits, in Debian's Chromium: a LeNet trained on Fashion-MNIST's real
garments offers garments as its examples, says what to draw, and calls a photograph unknown."""

from __future__ import annotations

import re
import shutil

import pytest

from zoo import weights

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def garments_server(tmp_path_factory, registry, fashion_weights, lenet_weights):
    """The demo over the Fashion-MNIST LeNet and the digits LeNet, served in-process."""
    from tests.conftest import _free_port
    from zoo.demo.app import build_app, serve
    from zoo.demo.shelf import WeightsShelf

    folder = tmp_path_factory.mktemp("garments") / "weights"
    folder.mkdir()
    for path in (fashion_weights, lenet_weights):
        shutil.copy(path, folder / path.name)
    examples = tmp_path_factory.getbasetemp() / "demo-examples"
    app = build_app(WeightsShelf(registry, folder), examples_dir=examples)
    port = _free_port()
    serve(app, port=port, prevent_thread_lock=True)
    try:
        yield f"http://127.0.0.1:{port}/", examples
    finally:
        app.close()


def test_a_fashion_mnist_models_examples_are_garments(browser, garments_server, fashion_weights):
    from playwright.sync_api import expect

    url, examples = garments_server
    classes = weights.read_meta(fashion_weights)["classes"]
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(url)
    page.locator("#model-choice input").click()
    page.get_by_role("option", name=re.compile(r"^lenet-fashion-mnist")).click()
    own = page.locator("#examples-own")
    expect(own).to_contain_text("fashion-mnist test images", timeout=20_000)
    expect(own.locator(".caption-label")).to_have_text(classes)  # one of each, its true class
    expect(page.locator("#examples-photos")).to_be_hidden()  # a grey model: no colour photos
    box = own.locator(".thumbnail-item").first.bounding_box()
    assert 60 <= box["width"] <= 140 and box["height"] < 2 * box["width"]  # sized to thumbnails
    own.locator(".thumbnail-item").nth(classes.index("Sneaker")).click()
    answer = page.locator("#prediction .answer")
    expect(answer).to_be_visible(timeout=20_000)
    assert answer.get_attribute("data-label") in classes
    expect(page.locator("#prediction")).to_contain_text("lenet-fashion-mnist.safetensors")
    page.get_by_role("tab", name="Draw").click()
    expect(page.locator("#sketchpad")).to_contain_text("Draw a garment (T-shirt/top, Trouser")
    page.get_by_role("tab", name="Image").click()
    page.locator("#upload input[type=file]").set_input_files(examples / "china.png")
    page.get_by_role("button", name="Classify image").click()
    expect(page.locator("#prediction .answer.unknown")).to_be_visible(timeout=20_000)
    page.close()
