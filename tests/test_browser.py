"""The demo in a real browser: Debian's Chromium driven by Playwright (install it with
scripts/install-debian-packages.sh; Playwright's own browser download is not used)."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from zoo.serving.inference import Classifier

pytestmark = pytest.mark.browser

DIGITS = [str(d) for d in range(10)]


@pytest.fixture
def page(browser, demo_server):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(demo_server.url)
    yield page
    page.close()


def top_label(page) -> str:
    """The top class of the answer shown (or its best guess, if it says "unknown")."""
    from playwright.sync_api import expect

    answer = page.locator("#prediction .answer")
    expect(answer).to_be_visible(timeout=20_000)
    return answer.get_attribute("data-label")


def draw_seven(page) -> None:
    canvas = page.locator("#sketchpad canvas").first
    canvas.wait_for()
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 60, y - 90)  # a 7: the bar, then the stem
    page.mouse.down()
    page.mouse.move(x + 60, y - 90, steps=10)
    page.mouse.move(x - 10, y + 100, steps=10)
    page.mouse.up()


def test_upload_shows_the_predicted_label(page, demo_server, registry):
    from playwright.sync_api import expect

    digit = demo_server.examples_dir / "digits-3.png"
    classifier = Classifier.load(registry, demo_server.weights_dir / "lenet-digits.safetensors")
    expected = classifier.top(classifier.probabilities([classifier.to_uint8(Image.open(digit))])[0])
    page.locator("#upload input[type=file]").set_input_files(digit)
    page.get_by_role("button", name="Classify image").click()
    assert top_label(page) == next(iter(expected))
    expect(page.locator("#prediction")).to_contain_text("lenet-digits.safetensors")
    assert re.search(r"\d+\.\d%", page.locator("#prediction .top-value").last.inner_text())
    method = classifier.meta.get("explain", {}).get("method", "saliency")  # chosen in training
    assert page.locator("#latency textarea").input_value().endswith(f"where it looked: {method}")
    expect(page.locator("#looked img")).to_be_visible()  # where it looked, beside what it saw


def test_drawing_is_classified_as_it_is_drawn(page):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Draw").click()
    expect(page.get_by_role("button", name="Classify drawing")).to_have_count(0)
    draw_seven(page)  # the brush is chosen on opening: no tool to pick, no button to press
    assert top_label(page) in DIGITS
    expect(page.locator("#looked img")).to_be_visible()
    page.get_by_role("button", name="Clear canvas").click()
    expect(page.locator("#prediction .answer")).to_have_count(0, timeout=20_000)
    draw_seven(page)  # the brush is still chosen after "clear"
    assert top_label(page) in DIGITS
    page.get_by_role("tab", name="Image").click()  # its upload is empty: no answer beside it
    expect(page.locator("#prediction .answer")).to_have_count(0, timeout=20_000)


def test_examples_classify_on_click_and_a_new_model_answers_again(page):
    from playwright.sync_api import expect

    expect(page.locator("#examples-photos")).to_be_hidden()  # LeNet is chosen: digits only
    page.locator("#examples-own .thumbnail-item").nth(4).click()
    assert top_label(page) in DIGITS
    page.locator("#model-choice input").click()
    page.get_by_role("option", name=re.compile(r"^imagenet\/resnet18")).click()
    expect(page.locator("#prediction")).to_contain_text("imagenet/resnet18", timeout=30_000)
    expect(page.locator("#examples-photos")).to_be_visible()
    expect(page.locator("#examples-own")).to_be_hidden()  # no ImageNet images here
    expect(page.get_by_role("tab", name="Draw")).to_be_hidden()  # photographs are not drawn
    page.locator("#upload button[aria-label='Remove Image']").click()  # the image and answer go
    expect(page.locator("#prediction .answer")).to_have_count(0, timeout=20_000)


def test_compare_shows_every_model(page, demo_server):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-upload input[type=file]").set_input_files(
        demo_server.examples_dir / "flower.png"
    )
    page.get_by_role("button", name="Compare every model").click()
    table = page.locator("#compare-table")
    expect(table).to_contain_text("lenet-digits.safetensors", timeout=30_000)
    expect(table).to_contain_text("imagenet/resnet18")
    expect(table).to_contain_text("unusable")  # the corrupt file says so in its row
    expect(page.locator("#compare-table img").first).to_be_visible()


def test_bad_upload_shows_an_error(page, tmp_path):
    from playwright.sync_api import expect

    notes = tmp_path / "notes.png"
    notes.write_text("not an image\n")
    page.locator("#upload input[type=file]").set_input_files(notes)
    page.get_by_role("button", name="Classify image").click()
    expect(page.get_by_text("notes.png: not an image file")).to_be_visible(timeout=20_000)
