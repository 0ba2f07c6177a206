"""The Classify and Compare tabs and the prediction endpoints (/predict, /classify,
/classify_drawing, /explain, /compare). Every input goes through `Classify`: the shelf's names
only, the intake's checks, one decode per request, the shared forward passes."""

from __future__ import annotations

import functools
import html
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from zoo.demo import cards
from zoo.demo.classify import (
    EMPTY_DRAWING,
    Classify,
    Reader,
    ShownAnswer,
    read_drawing,
    read_upload,
    sketch_blobs,
)
from zoo.demo.components import lenient
from zoo.demo.examples import Example, Examples
from zoo.demo.intake import Uploads
from zoo.demo.results import answer_html, compare_html, drawing_label, takes_photos
from zoo.demo.shelf import WeightsShelf, accuracy, describe
from zoo.demo.sketchpad import Drawings
from zoo.errors import ZooError

MAX_BATCH_SIZE = 16  # concurrent predictions that share one forward pass
# Every prediction event runs in this group; each decodes its own input, then waits for a
# forward pass shared with the others (demo/batching.py), so up to a batch can run at once.
PREDICTION = {"concurrency_id": "predict", "concurrency_limit": MAX_BATCH_SIZE}
# The tab's own events: not in the API docs, gradio's file data taken as it comes (the intake
# opens what is due; gradio decodes nothing, no editor layer).
UI_EVENT = {"api_visibility": "undocumented", "preprocess": False, **PREDICTION}
NOT_FINITE = "the answer is not a finite number (the model overflows on this input)"
QUIET = {"api_visibility": "undocumented", "show_progress": "hidden"}  # the tab's own, no model
COMPARE_HEADERS = ["weights file", "model", "answer", "confidence %", "unknown", "latency ms"]


def error(message: str) -> gr.Error:
    """A user's mistake as a gr.Error: escaped (gradio renders it as HTML), no server traceback."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def guarded(run: Callable[..., Any]) -> Callable[..., Any]:
    """`run`, with a ZooError shown as a one-line gr.Error, a bug logged here and answered
    with one line, and an answer holding NaN or infinity refused (gradio would send it as
    null, or as JSON no browser parses). The error is raised outside the handler of the
    failure, so nothing the failed call built stays referenced through its context."""

    @functools.wraps(run)  # gradio reads the signature (gr.EventData arguments)
    def wrapped(*args: Any) -> Any:
        try:
            answer = run(*args)
        except ZooError as problem:
            message = str(problem)
        except gr.Error:
            raise
        except Exception:  # a bug, not the user's doing: logged here, one line for the user
            traceback.print_exc()
            message = "the server failed on this request"
        else:
            if finite(answer):
                return answer
            message = NOT_FINITE
        raise error(message)

    return wrapped


def finite(value: Any) -> bool:
    """Whether no number in `value` (nested in lists, tuples and dicts) is NaN or infinite."""
    if isinstance(value, float | np.floating):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(finite(v) for v in value)
    return True


def choices(shelf: WeightsShelf) -> list[tuple[str, str]]:
    """Short dropdown labels (they fit a phone): the name, its accuracy, "weak" if it is;
    "unusable" for a file that cannot be used (`_about` says why)."""
    choices = []
    for name in shelf.names():
        meta = shelf.meta(name)
        if meta is None:
            choices.append((f"{name}: unusable", name))
            continue
        score = accuracy(meta)
        label = f"{name}, {score:.1%}" if score is not None else name
        if meta.get("classes") and "metrics" in meta and cards.weakness(meta):
            label += " (weak)"
        choices.append((label, name))
    return choices


def _about(shelf: WeightsShelf, name: str | None) -> str:
    """A line on the chosen model, with the weak-model warning where it applies."""
    meta = _offered(shelf, name)
    if meta is None:
        problem = shelf.problem(name) if name in shelf.names() else None
        if problem:
            return f'<p class="weak-model">Unusable: {html.escape(problem)}</p>'
        return "<p>No usable model chosen: `zoo train lenet` makes one.</p>" if name else ""
    text = f'<p class="model-about">{html.escape(describe(meta))}</p>'
    weak = cards.weakness(meta) if "metrics" in meta else None
    if weak:
        text += f'<p class="weak-model">Weak model: {html.escape(weak)}.</p>'
    return text


def _shown(answer: ShownAnswer) -> tuple:
    """The Classify tab's outputs for an answer."""
    title = f"{answer.classifier.meta['model']} on {answer.classifier.meta.get('dataset', '?')}"
    return (
        answer_html(answer.name, title, answer.top, answer.unknown),
        answer.view,
        answer.looked,
        answer.latency + (f"; where it looked: {answer.method}" if answer.method else ""),
    )


CLEARED = ("", None, None, "")
CLEAR_JS = "() => ['', null, null, '']"  # CLEARED, in the browser at once


def _image_input(elem_id: str, height: int) -> gr.Image:
    """An image by upload, paste or webcam, its value passed to the handler as it came."""
    return lenient(
        gr.Image(
            type="filepath",
            sources=["upload", "clipboard", "webcam"],
            label="Upload, paste or take a picture",
            elem_id=elem_id,
            height=height,
            format="png",
        )
    )


def classify_tab(classify: Classify, examples: Examples) -> gr.Dropdown:
    """The Classify tab: a model, an image or a drawing, the answer right under it with what
    the model saw and where it looked, then the examples that suit the model: its own
    dataset's test images, and photographs for a colour model."""
    shelf = classify.shelf
    # The page is built before any weights file is checked (the check costs a second): the
    # page's load offers the shelf's models and chooses the default, whose change fits the tab.
    # A client may name a model without loading the page: the shelf checks every name.
    fits = _fits(shelf, examples, None)
    model = gr.Dropdown(
        [], value=None, label="Model", elem_id="model-choice", allow_custom_value=True
    )
    about = gr.HTML()
    source = gr.State(None)  # "image" or "drawing": what the shown answer came from
    drawings = Drawings()  # the drawings the browser sends ahead of their events
    with gr.Row(equal_height=False):
        with (
            gr.Column(min_width=300),
            gr.Tabs(selected="image", elem_classes=_drawing_class(fits.drawing)) as inputs,
        ):
            with gr.Tab("Image", id="image") as image_tab:
                image = _image_input("upload", 300)
                image_button = gr.Button("Classify image", variant="primary")
            with gr.Tab("Draw", id="drawing", elem_id="draw-tab") as draw_tab:
                sketch = lenient(
                    drawings.attach(
                        gr.Sketchpad(
                            type="filepath",
                            format="png",
                            canvas_size=(280, 280),
                            brush=gr.Brush(default_size=32, colors=["#000000"], color_mode="fixed"),
                            eraser=gr.Eraser(default_size=24),
                            layers=False,
                            transforms=(),
                            label=fits.drawing or "Draw",
                            elem_id="sketchpad",
                        )
                    )
                )
        with gr.Column(min_width=300):
            answer = gr.HTML(elem_id="prediction")
            with gr.Row():
                seen, looked = (
                    gr.Image(
                        label=label,
                        interactive=False,
                        format="png",
                        min_width=140,
                        buttons=["fullscreen"],
                        elem_id=elem_id,
                    )
                    for label, elem_id in (
                        ("What the model saw", "seen"),
                        ("Where it looked", "looked"),
                    )
                )
            latency = gr.Textbox(label="Latency", interactive=False, elem_id="latency")
    with gr.Column(visible=bool(fits.own), elem_id="examples-own") as own_section:
        own_title = gr.Markdown(fits.own_title)
        own = gr.Gallery(
            fits.gallery(),
            show_label=False,
            columns=10,
            allow_preview=False,
            elem_classes=["example-gallery", "dataset-gallery"],
        )
    with gr.Column(visible=fits.photos, elem_id="examples-photos") as photo_section:
        gr.Markdown("**Photographs**: click one to classify it")
        photos = gr.Gallery(
            [(str(e.path), e.label) for e in examples.photos],
            show_label=False,
            columns=10,
            allow_preview=False,
            elem_classes=["example-gallery", "photo-gallery"],
        )
    shown = [answer, seen, looked, latency]

    def read_sketch(uploads: Uploads, value: Any) -> Image.Image:
        return read_drawing(uploads, sketch_blobs(drawings, value))

    def from_image(name: Any, given: Any) -> tuple:
        return (*_shown(classify.answer(name, given, read_upload, explaining=True)), "image")

    def from_drawing(name: Any, sketch_value: Any) -> tuple:
        try:
            found = classify.answer(name, sketch_value, read_sketch, explaining=True)
        except ZooError as problem:
            if str(problem) == EMPTY_DRAWING:  # cleared, or not drawn yet: nothing to say
                return (*CLEARED, None)
            raise
        return (*_shown(found), "drawing")

    def rerun(name: Any, given: Any, sketch_value: Any, came_from: str | None) -> tuple:
        """A new model (or the other input tab) answers for the input on screen, or the
        answer goes: it never stands beside an empty input."""
        if came_from == "drawing" and drawing_label(
            shelf.meta(name) if name in shelf.names() else None
        ):
            return from_drawing(name, sketch_value)
        if came_from == "image" and given:
            return from_image(name, given)
        return (*CLEARED, None)

    def refit(name: Any) -> tuple:
        """The chosen model's description, examples and Draw tab."""
        found = _fits(shelf, examples, name)
        hidden = {} if found.drawing else {"selected": "image"}  # not left on a hidden tab
        return (
            _about(shelf, name),
            gr.Column(visible=bool(found.own)),
            found.own_title,
            gr.Gallery(found.gallery()),
            gr.Column(visible=found.photos),
            gr.Sketchpad(label=found.drawing or "Draw"),
            gr.Tabs(elem_classes=_drawing_class(found.drawing), **hidden),
        )

    image_button.click(
        guarded(from_image),
        [model, image],
        [*shown, source],
        **UI_EVENT,
    )
    # A removed image takes its answer away. Not on `input` too: that may fire as an example's
    # pick sets the image, after its answer (the suspected cause of a lost answer seen in CI).
    image.clear(None, None, shown, js=CLEAR_JS, **QUIET)
    sketch.change(
        guarded(from_drawing),
        [model, sketch],
        [*shown, source],
        trigger_mode="always_last",  # strokes made during a pass: only the last one is run
        show_progress="hidden",
        **UI_EVENT,
    )
    model.change(
        guarded(rerun),
        [model, image, sketch, source],
        [*shown, source],
        trigger_mode="always_last",
        **UI_EVENT,
    )
    for tab, came_from in ((image_tab, "image"), (draw_tab, "drawing")):

        def switched(name: Any, given: Any, sketch_value: Any, came_from=came_from) -> tuple:
            return rerun(name, given, sketch_value, came_from)

        tab.select(
            guarded(switched),
            [model, image, sketch],
            [*shown, source],
            trigger_mode="always_last",
            **UI_EVENT,
        )
    model.change(
        refit,
        model,
        [about, own_section, own_title, own, photo_section, sketch, inputs],
        **QUIET,
    )

    def pick(chosen_examples: Callable[[Any], list[Example]], name: Any, selected: Any) -> tuple:
        listed = chosen_examples(name)
        example = listed[_picked(selected, len(listed))]  # the server's file, not a client path
        found = classify.answer(name, str(example.path), read_upload, explaining=True)
        shown_image = Image.open(example.path)  # a copy goes to gradio's cache
        return (shown_image, *_shown(found), "image")

    for gallery, listed in (
        (own, lambda name: _fits(shelf, examples, name).own),
        (photos, lambda name: examples.photos),
    ):

        def picked(name: Any, selected: gr.EventData = None, listed=listed) -> tuple:
            return pick(listed, name, selected)

        gallery.select(
            guarded(picked),
            [model],
            [image, *shown, source],
            api_visibility="undocumented",
            **PREDICTION,
        )
    _named_endpoints(classify, model, image, sketch, read_sketch)
    return model


def _picked(selected: gr.EventData | None, count: int) -> int:
    """The index of the example a gallery's select event names, or a ZooError (an API call
    may send no event data, or any)."""
    data = selected._data if selected is not None else None  # what gradio got, unchecked
    index = data.get("index") if isinstance(data, dict) else None
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ZooError("choose one of the examples shown")
    return index


@dataclass
class _Fits:
    """What the Classify tab offers for a model: its dataset's examples, the photographs or
    not, and what to draw (None: no Draw tab)."""

    own: list[Example]
    photos: bool
    drawing: str | None
    dataset: str

    @property
    def own_title(self) -> str:
        return (
            f"**{self.dataset} test images**, one of each class, captioned with its true "
            "class: click one to classify it"
        )

    def gallery(self) -> list[tuple[str, str]]:
        return [(str(e.path), e.label) for e in self.own]


def _drawing_class(drawing: str | None) -> list[str]:
    """The input tabs' classes: "no-drawing" hides the Draw tab (gradio 6 does not update a
    Tab's own visibility)."""
    return [] if drawing else ["no-drawing"]


def _offered(shelf: WeightsShelf, name: Any) -> dict[str, Any] | None:
    """The metadata of the model `name` if the shelf offers it and it can be read."""
    return shelf.meta(name) if name in shelf.names() else None


def _fits(shelf: WeightsShelf, examples: Examples, name: Any) -> _Fits:
    meta = _offered(shelf, name)
    dataset = str((meta or {}).get("dataset", ""))
    return _Fits(examples.of_model(meta), takes_photos(meta), drawing_label(meta), dataset)


def _named_endpoints(classify: Classify, model, image, sketch, read_sketch: Reader) -> None:
    """The documented API: /predict, /classify, /classify_drawing and /explain."""

    def result(read: Reader, outputs: int) -> Callable[[Any, Any], Any]:
        def run(name: Any, given: Any) -> Any:
            found = classify(name, given, read)
            return found[0] if outputs == 1 else found

        return run

    def explain(name: Any, given: Any) -> tuple:
        found = classify.answer(name, given, read_upload, explaining=True)
        return found.top, found.looked

    label = gr.Label(num_top_classes=5, visible=False)
    view = gr.Image(format="png", visible=False)
    latency = gr.Textbox(visible=False)
    # The prediction events take gradio's file data as it comes (preprocess=False): gradio
    # decodes nothing (no editor layer, no unchecked file); `intake.Uploads` opens what is due.
    for name, read, inputs, outputs in (
        ("predict", read_upload, [model, image], [label]),
        ("classify", read_upload, [model, image], [label, view, latency]),
        ("classify_drawing", read_sketch, [model, sketch], [label, view, latency]),
    ):
        gr.on(
            triggers=[],
            fn=guarded(result(read, len(outputs))),
            inputs=inputs,
            outputs=outputs,
            api_name=name,
            preprocess=False,
            **PREDICTION,
        )
    gr.on(
        triggers=[],
        fn=guarded(explain),
        inputs=[model, image],
        outputs=[label, view],
        api_name="explain",
        preprocess=False,
        **PREDICTION,
    )


def compare_tab(classify: Classify) -> None:
    """The Compare tab (a table that wraps on a phone, heat maps in its rows) and /compare
    (the same rows as data, and the heat maps as a gallery)."""
    gr.Markdown(
        "One image, every model on the shelf: each one's answer, its calibrated confidence, "
        "whether it finds the image unlike its training data, its latency and where it looked."
    )
    with gr.Row(equal_height=False):
        with gr.Column(min_width=300, scale=1):
            image = _image_input("compare-upload", 260)
            button = gr.Button("Compare every model", variant="primary")
        with gr.Column(min_width=300, scale=2):
            shown = gr.HTML(elem_id="compare-table")
    table = gr.Dataframe(headers=COMPARE_HEADERS, visible=False)
    heatmaps = gr.Gallery(visible=False)

    def compare(given: Any) -> tuple[list[list], dict[str, Image.Image]]:
        """A row per model on offer, and each usable one's heat map by name."""
        data, looked = [], {}
        for found in classify.compare(given, read_upload):
            if not isinstance(found, ZooError) and not finite(found.top):
                found = ZooError(f"{found.name}: {NOT_FINITE}")
            if isinstance(found, ZooError):
                name, _, why = str(found).partition(": ")
                data.append([name, "", f"unusable: {why}", None, None, None])
                continue
            label, p = next(iter(found.top.items()))
            model = found.classifier.meta["model"]
            data.append(
                [
                    found.name,
                    model,
                    label,
                    round(p * 100, 1),
                    found.unknown,
                    round(found.total_ms, 1),
                ]
            )
            looked[found.name] = found.looked
        return data, looked

    def rows(given: Any) -> tuple[list[list], list[tuple]]:
        data, looked = compare(given)
        answers = {row[0]: row[2] for row in data}
        return data, [(picture, f"{name}: {answers[name]}") for name, picture in looked.items()]

    def show(given: Any) -> str:
        return compare_html(*compare(given))

    button.click(guarded(show), [image], [shown], **UI_EVENT)
    gr.on(
        triggers=[],
        fn=guarded(rows),
        inputs=[image],
        outputs=[table, heatmaps],
        api_name="compare",
        preprocess=False,
        **PREDICTION,
    )
