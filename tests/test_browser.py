"""The demo in a real browser: Debian's Chromium driven by Playwright (install it with
scripts/install-chromium.sh; Playwright's own browser download is not used)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from zoo.inference import Classifier

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DIGITS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip("no /usr/bin/chromium: run scripts/install-chromium.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, demo_server):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(demo_server.url)
    yield page
    page.close()


def top_label(page) -> str:
    """The predicted class the Label shows, once it shows one."""
    from playwright.sync_api import expect

    prediction = page.locator("#prediction")
    expect(prediction).to_contain_text("%", timeout=20_000)
    return prediction.inner_text().splitlines()[1]


def test_upload_shows_the_predicted_label(page, demo_server, registry):
    digit = demo_server.examples_dir / "digit-3.png"
    classifier = Classifier.load(registry, demo_server.weights_dir / "lenet-digits.safetensors")
    expected = classifier.top(classifier.probabilities([classifier.to_uint8(Image.open(digit))])[0])
    page.locator("#upload input[type=file]").set_input_files(digit)
    page.get_by_role("button", name="Classify image").click()
    assert top_label(page) == next(iter(expected))
    assert page.get_by_label("Latency").input_value().endswith("for a batch of 1")


def test_drawing_on_the_sketchpad_is_classified(page):
    page.get_by_role("tab", name="Draw").click()
    canvas = page.locator("#sketchpad canvas").first
    canvas.wait_for()
    page.get_by_role("button", name="Brush").click()
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 60, y - 90)  # a 7: the bar, then the stem
    page.mouse.down()
    page.mouse.move(x + 60, y - 90, steps=10)
    page.mouse.move(x - 10, y + 100, steps=10)
    page.mouse.up()
    page.get_by_role("button", name="Classify drawing").click()
    assert top_label(page) in DIGITS


def test_empty_sketchpad_and_bad_upload_show_errors(page, tmp_path):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Draw").click()
    page.get_by_role("button", name="Classify drawing").click()
    expect(page.get_by_text("the sketchpad is empty: draw a digit first")).to_be_visible()
    page.get_by_role("tab", name="Image").click()
    notes = tmp_path / "notes.png"
    notes.write_text("not an image\n")
    page.locator("#upload input[type=file]").set_input_files(notes)
    page.get_by_role("button", name="Classify image").click()
    expect(page.get_by_text("notes.png: not an image file")).to_be_visible(timeout=20_000)
