"""A tour of the demo in Debian's Chromium, at a laptop's and a phone's size: every tab is used
as a visitor would and photographed into docs/screenshots/ (the README shows two of them)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.test_browser import draw_seven

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "docs" / "screenshots"
SIZES = {"desktop": (1366, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def tour_server(tmp_path_factory, registry):
    """The demo over a LeNet trained with its run folder (curves, confusion matrix) and a weak
    LeNet trained on 20 images, served in-process on a free port."""
    from tests.conftest import _free_port
    from zoo.demo.app import build_app, serve
    from zoo.demo.shelf import WeightsShelf
    from zoo.training.config import TrainConfig
    from zoo.training.loop import train

    root = tmp_path_factory.mktemp("tour")
    spec = registry.model("lenet")
    for run, options in (("lenet-digits", {"epochs": 8}), ("lenet-20", {"epochs": 2, "limit": 20})):
        config = TrainConfig.for_model(spec, **options)
        out = root / "weights" / f"{run}.safetensors"
        train(registry, spec, config, out, run_dir=root / "runs" / run, progress=False)
    app = build_app(
        WeightsShelf(registry, root / "weights"), examples_dir=examples_dir(tmp_path_factory)
    )
    port = _free_port()
    serve(app, port=port, prevent_thread_lock=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def examples_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "demo-examples"  # written once a session


@pytest.fixture(scope="module")
def tour_examples(tmp_path_factory, tour_server) -> Path:
    return examples_dir(tmp_path_factory)


def open_tab(page, name: str) -> None:
    """Open a top-level tab, from gradio's "More tabs" menu where the screen is too narrow."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count():
        tab.click()
    else:
        page.get_by_role("button", name="More tabs").first.click()
        page.locator(".overflow-dropdown button", has_text=name).first.click()


def snap(page, name: str) -> Path:
    """A full-page screenshot as docs/screenshots/NAME.png, reduced to a 256-colour palette."""
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # lazy images load
    page.wait_for_timeout(300)
    page.evaluate("window.scrollTo(0, 0)")
    image = Image.open(io.BytesIO(page.screenshot(full_page=True)))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    image.convert("RGB").quantize(256).save(path, optimize=True)
    return path


@pytest.mark.parametrize("size", SIZES)
def test_every_tab_is_photographed(browser, tour_server, tour_examples, size):
    from playwright.sync_api import expect

    width, height = SIZES[size]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(tour_server)
    expect(page.locator("#examples-own")).to_be_visible(timeout=20_000)
    page.locator("#examples-own .thumbnail-item").nth(3).click()
    expect(page.locator("#prediction .answer")).to_be_visible(timeout=20_000)
    expect(page.locator("#prediction")).to_contain_text("lenet-digits.safetensors")
    expect(page.locator("#looked img")).to_be_visible()
    snap(page, f"classify-{size}")

    page.get_by_role("tab", name="Draw").click()
    expect(page.locator("#sketchpad button[aria-label='Pan']")).to_be_hidden()
    before = page.locator("#latency textarea").input_value()
    draw_seven(page)
    expect(page.locator("#latency textarea")).not_to_have_value(before, timeout=20_000)
    expect(page.locator("#looked img")).to_be_visible(timeout=20_000)  # the answer drawn too
    snap(page, f"draw-{size}")

    open_tab(page, "Compare")
    page.locator("#compare-upload input[type=file]").set_input_files(tour_examples / "digits-5.png")
    page.get_by_role("button", name="Compare every model").click()
    expect(page.locator("#compare-table")).to_contain_text("lenet-20.safetensors", timeout=30_000)
    expect(page.locator("#compare-table img").first).to_be_visible()
    snap(page, f"compare-{size}")

    open_tab(page, "Models")
    weak = page.locator(".model-card .weak-model")
    expect(weak).to_contain_text(re.compile(r"trained on only \d+ images \([\d.]+ a class\)"))
    expect(page.get_by_text("Confusion matrix (test split)").first).to_be_visible()
    snap(page, f"models-{size}")

    open_tab(page, "Inspect")
    expect(page.locator(".graph-view svg")).to_be_visible()
    expect(page.locator(".graph-view")).to_contain_text("conv1.weight 6x1x5x5")
    page.get_by_role("button", name="zero_grad(), then loss.backward()").click()
    expect(page.get_by_text("after zero_grad() every one of its 150 values was 0")).to_be_visible(
        timeout=20_000
    )
    snap(page, f"inspect-{size}")

    open_tab(page, "Backprop")
    expect(page.get_by_text("= 1 x 1.1 x 100 = 110")).to_be_visible()
    snap(page, f"backprop-{size}")
    page.close()
