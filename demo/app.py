"""`zoo demo`: the Gradio app. Classify (upload, paste, webcam, sketchpad), Models (a card per
weights file), Inspect (the LeNet tutorial's views of a model) and Backprop (the orange graph),
with named API endpoints; prediction requests are batched on the server."""

from __future__ import annotations

import html
import math
import os
import socket
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from starlette.middleware import Middleware

from zoo.demo import backprop, cards, graphview, inspector
from zoo.demo.classify import Classify
from zoo.demo.examples import Examples, default_folder
from zoo.demo.guard import ComponentServerGuard
from zoo.demo.intake import Uploads
from zoo.demo.predict_tabs import (
    MAX_BATCH_SIZE,
    choices,
    classify_tab,
    compare_tab,
    guarded,
)
from zoo.demo.shelf import WeightsShelf, accuracy
from zoo.errors import ZooError
from zoo.header import DEFAULT_MAX_PARAMETERS
from zoo.registry import Registry

MAX_FILE_SIZE = "10mb"
MAX_AMOUNT = 1e100  # the Backprop tab's inputs: a product of three stays finite
QUEUE_SIZE = 64  # requests waiting beyond this are refused ("queue is full")
CONCURRENCY = 2  # events of one kind running at once (forward passes run one at a time)
# The model's views, content-addressed, beside gradio's own files (GRADIO_TEMP_DIR).
VIEWS = Path(gr.utils.get_upload_folder()) / "zoo-model-views"


def _models_tab(app: gr.Blocks, registry: Registry, shelf: WeightsShelf, runs_dir: Path) -> None:
    refresh = gr.Button("Reload", size="sm")

    @gr.render(triggers=[app.load, refresh.click])
    def _cards() -> None:
        # The most accurate first, as the Classify tab's default; unusable files last.
        paths = sorted(
            shelf.files(), key=lambda path: -(accuracy(shelf.meta(path.name) or {}) or -1)
        )
        if not paths:
            gr.Markdown(f"No weights in {shelf.folder}: `zoo train lenet` makes one.")
        for path in paths:
            found = cards.card(registry, shelf, path, runs_dir)
            with gr.Accordion(found.title, open=len(paths) <= 3, elem_classes="model-card"):
                if found.warning:
                    gr.HTML(
                        f'<p class="weak-model">Weak model: {html.escape(found.warning)}. '
                        "Its answers are little better than guesses.</p>"
                    )
                gr.HTML(found.html)
                with gr.Row(equal_height=False):
                    for figure, caption in found.figures:
                        gr.Image(
                            str(figure),
                            label=caption,
                            interactive=False,
                            height=320,
                            min_width=300,
                            buttons=["fullscreen"],
                        )


def _inspect_tab(app: gr.Blocks, inspecting: inspector.Inspector) -> None:
    names = inspecting.listed()  # the weights files' models join on the page's load
    first = "lenet" if "lenet" in names else names[0]
    shown = inspecting.inspect(first)  # the tab opens on the tutorial's LeNet
    budget = f"{inspecting.max_parameters / 1e6:,.0f}M"
    gr.Markdown(
        f"The models on offer: those `zoo list` shows and those of the weights files, up to "
        f"{budget} parameters (`zoo demo --max-params` sets it)."
    )
    with gr.Row():
        # Names are checked by the handler, which answers an unknown one in a short line.
        model = gr.Dropdown(names, value=first, label="Model", allow_custom_value=True, scale=3)
        inspect_button = gr.Button("Inspect", variant="primary", scale=1)
    summary = gr.Markdown(shown.summary)
    with gr.Row(equal_height=False):
        with gr.Column(min_width=320):
            gr.Markdown(inspector.TUTORIAL["tree"])
            tree = gr.Code(
                shown.tree, label="Module tree (print(model))", language=None, wrap_lines=True
            )
            gr.Markdown(inspector.TUTORIAL["parameters"])
            table = gr.Dataframe(
                shown.parameters,
                headers=["parameter", "shape", "elements"],
                label="Parameters",
                wrap=True,
            )
        with gr.Column(min_width=320):
            gr.Markdown(inspector.TUTORIAL["graph"])
            graph = gr.HTML(shown.graph)
    gr.Markdown(inspector.TUTORIAL["gradient"])
    with gr.Row():
        # Any offered model's parameter is accepted (the choices are the shown model's, per
        # session): a fresh client asks /gradient for resnet18's fc.bias without inspecting.
        parameter = gr.Dropdown(
            **_parameter_choices(shown), label="Parameter", allow_custom_value=True, scale=3
        )
        grad_button = gr.Button("zero_grad(), then loss.backward()", scale=1)
    grad_summary = gr.Markdown()
    with gr.Row(equal_height=False):
        # Unlabelled: the picture's own title says which it is (a label would cover it).
        before, after = (
            gr.Image(label=label, show_label=False, interactive=False, min_width=320)
            for label in ("grad after zero_grad()", "grad after loss.backward()")
        )

    def inspect(name: str):
        found = inspecting.inspect(name)
        params = gr.Dropdown(**_parameter_choices(found))
        return found.tree, found.parameters, found.summary, found.graph, params

    def gradient(name: str, param: str):
        found = inspecting.gradients(name, param)
        return found.before, found.after, found.summary

    app.load(lambda: gr.Dropdown(inspecting.names()), None, model, api_visibility="undocumented")
    gr.on(
        [inspect_button.click, model.change],
        guarded(inspect),
        model,
        [tree, table, summary, graph, parameter],
        api_name="inspect",
    )
    gr.on(
        [grad_button.click, parameter.change],
        guarded(gradient),
        [model, parameter],
        [before, after, grad_summary],
        api_name="gradient",
    )


def _parameter_choices(found: inspector.Inspection) -> dict[str, Any]:
    """The parameter dropdown's choices, the first one chosen."""
    names = [row[0] for row in found.parameters]
    return {"choices": names, "value": names[0] if names else None}


def _backprop(quantity: Any, price: Any, tax: Any) -> tuple:
    """The Backprop tab's outputs: total, its three derivatives, the diagram, the autograd
    graph drawn, and the chain rule written out with these values (each a number within
    `MAX_AMOUNT` of zero, so every product stays finite)."""
    given = (quantity, price, tax)
    if any(value is None for value in given):
        raise ZooError("enter a quantity, a unit price and a tax")
    for name, value in zip(("quantity", "unit price", "tax"), given, strict=True):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or abs(value) > MAX_AMOUNT:
            raise ZooError(f"the {name} must be a number from -{MAX_AMOUNT:g} to {MAX_AMOUNT:g}")
    result = backprop.oranges(quantity, price, tax)
    derivatives = tuple(result.grads[name] for name in backprop.INPUTS)
    return (
        result.values["total"],
        *derivatives,
        backprop.diagram(result),
        graphview.svg(result.graph, "total.grad_fn, walked back to the inputs"),
        backprop.chain_html(result),
    )


def _backprop_tab() -> None:
    gr.Markdown(
        "Oranges: **cost = quantity x price**, **total = cost x tax**. Autograd computes how "
        "much the total moves when each input moves by one: the chain rule multiplies the "
        "local derivatives on the path from the total back to that input."
    )
    seed = (2, 100, 1.1)  # the tutorial's oranges: 220 in all, 110 an orange, 2.2 a unit of price
    shown = _backprop(*seed)
    with gr.Row():
        quantity = gr.Number(seed[0], label="quantity", min_width=100)
        price = gr.Number(seed[1], label="unit price", min_width=100)
        tax = gr.Number(seed[2], label="tax", min_width=100)
    button = gr.Button("Forward and backward", variant="primary")
    picture = gr.HTML(shown[4])
    chain = gr.HTML(shown[6])
    with gr.Row():
        total = gr.Number(shown[0], label="total", precision=6, min_width=140)
        d_quantity = gr.Number(shown[1], label="d total / d quantity", precision=6, min_width=140)
        d_price = gr.Number(shown[2], label="d total / d price", precision=6, min_width=140)
        d_tax = gr.Number(shown[3], label="d total / d tax", precision=6, min_width=140)
    graph = gr.HTML(shown[5])
    gr.on(
        [button.click, quantity.submit, price.submit, tax.submit],
        guarded(_backprop),
        [quantity, price, tax],
        [total, d_quantity, d_price, d_tax, picture, graph, chain],
        api_name="backprop",
        preprocess=False,  # the values as sent, checked by _backprop (not float()'s message)
    )


def build_app(
    shelf: WeightsShelf, examples_dir: Path | None = None, runs_dir: Path | None = None
) -> gr.Blocks:
    """The demo's Blocks over `shelf` (its folder's weights, within its parameter budget):
    training curves from `runs_dir` (default: runs/ beside the weights folder), example images
    cached in `examples_dir`."""
    registry = shelf.registry
    runs_dir = Path(runs_dir) if runs_dir else shelf.folder.absolute().parent / "runs"
    examples_dir = Path(examples_dir or default_folder())
    examples = Examples(registry, examples_dir)
    uploads = Uploads([gr.utils.get_upload_folder(), examples_dir])
    classify = Classify(shelf, uploads, VIEWS, MAX_BATCH_SIZE)
    with gr.Blocks(title="zoo demo", analytics_enabled=False) as app:
        gr.Markdown("# zoo\nThe model zoo's models, trained by `zoo train`, at work.")
        with gr.Tab("Classify"):
            model = classify_tab(classify, examples)
        with gr.Tab("Compare"):
            compare_tab(classify)
        with gr.Tab("Models"):
            _models_tab(app, registry, shelf, runs_dir)
        with gr.Tab("Inspect"):
            _inspect_tab(
                app, inspector.Inspector(registry, shelf.architectures, shelf.max_parameters)
            )
        with gr.Tab("Backprop"):
            _backprop_tab()

        def reload_choices() -> gr.Dropdown:
            return gr.Dropdown(choices(shelf), value=shelf.default())

        app.load(reload_choices, None, model, api_visibility="undocumented")
    app.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return app


CSS = """
/* Small images (the 8x8 digits) at the size of their box, pixels sharp. */
:is(#upload, #compare-upload) img { width: 100%; height: 100%; object-fit: contain;
  image-rendering: pixelated; }
/* The sketchpad keeps brush, eraser and clear: no pan, zoom, undo, colour or size widgets. */
#sketchpad :is(button[aria-label="Pan"], button[aria-label="Zoom in"],
  button[aria-label="Zoom out"], button[aria-label="Undo"], button[aria-label="Redo"],
  button[aria-label="Color"], button[aria-label="Brush Size"], .zoom-number, .separator) {
  display: none !important;
}
/* The Draw tab, for the models that take drawings only. */
.no-drawing #draw-tab-button { display: none !important; }
/* Results: the answer, then the top classes as bars with one decimal. */
.answer { margin: 0 0 8px 0; font-size: 1.05em; overflow-wrap: anywhere; }
.answer-label { font-size: 1.6em; margin-right: 6px; }
.answer.unknown { background: #fff3cd; color: #664d03; border-radius: 6px; padding: 8px 10px; }
.top-row { display: grid; grid-template-columns: minmax(3em, 30%) 1fr 4.5em; gap: 8px;
  align-items: center; margin: 3px 0; }
.top-label { overflow-wrap: anywhere; }
.top-bar { background: var(--neutral-100, #eee); border-radius: 4px; height: 12px; }
.top-bar span { display: block; height: 100%; background: var(--color-accent, #f97316);
  border-radius: 4px; }
.top-value { text-align: right; font-variant-numeric: tabular-nums; }
/* Example galleries: as tall as their thumbnails, which wrap; each image whole, its caption
   under it. A dataset's small images stay sharp. */
.example-gallery .grid-wrap { min-height: 0 !important; max-height: none !important;
  height: auto !important; overflow: visible !important; }
.example-gallery .grid-container { grid-template-rows: none !important;
  grid-auto-rows: auto !important;
  grid-template-columns: repeat(auto-fill, minmax(var(--thumb), 1fr)) !important; }
.dataset-gallery { --thumb: 84px; }
.photo-gallery { --thumb: 140px; }
.example-gallery .thumbnail-item { aspect-ratio: auto !important; height: auto !important;
  display: flex; flex-direction: column; }
.example-gallery .thumbnail-item > img { aspect-ratio: 1; height: auto !important;
  object-fit: contain !important; }
.dataset-gallery .thumbnail-item > img { image-rendering: pixelated; }
.photo-gallery .thumbnail-item > img { aspect-ratio: auto; }
.example-gallery .caption-label { position: static !important; max-width: none !important;
  white-space: normal !important; overflow-wrap: anywhere; text-align: center;
  border: none !important; border-radius: 0 !important; opacity: 1 !important; }
/* The model dropdown shows its whole label, wrapped. */
#model-choice input { text-overflow: ellipsis; }
#model-choice ul li { white-space: normal; }
/* Model cards: topic tables side by side where they fit. */
.card-tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr));
  gap: 12px; }
.card-table { width: 100%; border-collapse: collapse; margin: 0 !important; }
.card-table, .card-table tr { border: none !important; }
.card-table caption { text-align: left; font-weight: 600; padding: 4px 0; }
.card-table :is(th, td) { border: none !important; vertical-align: top !important;
  border-bottom: 1px solid var(--border-color-primary) !important;
  padding: 3px 8px 3px 0 !important; line-height: 1.35; background: none !important; }
.card-table th { text-align: left; font-weight: normal; opacity: 0.75; width: 38%; }
.card-table td { overflow-wrap: anywhere; }
.weak-model { background: #fff3cd; color: #664d03; border: 1px solid #ffe69c;
  border-radius: 6px; padding: 8px 12px; margin: 0; font-weight: 600; }
/* Diagrams: the autograd graph at its natural size, scaled down to fit a narrow screen. */
.graph-view { margin: 0; }
.graph-fit svg { display: block; max-width: 100%; height: auto; margin: 0 auto; }
.backprop-diagram svg { width: 100%; height: auto; max-height: 440px; }
.backprop-diagram .tall { display: none; }
.chain-row { overflow-wrap: anywhere; margin: 6px 0; font-size: 1.05em; }
.chain-numbers { font-family: monospace; }
/* Compare: a table; on a phone, each row a card. */
table.compare { width: 100%; border-collapse: collapse; }
table.compare :is(th, td) { text-align: left; vertical-align: middle; padding: 4px 6px;
  border-bottom: 1px solid var(--border-color-primary); overflow-wrap: anywhere; }
table.compare img { width: 112px; height: 112px; image-rendering: pixelated; display: block; }
.unknown-flag { background: #fff3cd; color: #664d03; border-radius: 4px; padding: 1px 6px; }
@media (max-width: 640px) {
  table.compare thead { display: none; }
  table.compare :is(tr, td) { display: block; border: none; padding: 2px 0; }
  table.compare tr { border-bottom: 1px solid var(--border-color-primary); padding: 8px 0; }
  table.compare td[data-h]::before { content: attr(data-h) ": "; opacity: 0.7; }
  .backprop-diagram .wide { display: none; }
  .backprop-diagram .tall { display: block; max-width: 420px; margin: auto; }
  .gradio-container { padding-left: 6px !important; padding-right: 6px !important; }
}
"""
# The sketchpad is always ready to draw: its brush is chosen whenever it is on screen with no
# tool chosen (gradio starts on none, and "clear" drops it: a stroke would then do nothing).
JS = """() => {
  const pick = () => {
    const pad = document.querySelector('#sketchpad');
    const brush = pad && pad.querySelector('button[aria-label="Brush"]');
    if (!brush || brush.offsetParent === null) return;
    const tools = pad.querySelectorAll('button[aria-label="Brush"], button[aria-label="Erase"]');
    if (![...tools].some((tool) => tool.classList.contains('highlight'))) brush.click();
  };
  new MutationObserver(pick).observe(document.body,
    {childList: true, subtree: true, attributes: true, attributeFilter: ['class', 'style']});
  pick();
}"""


def serve(
    app: gr.Blocks,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    prevent_thread_lock: bool = False,
) -> None:
    """Serve `app` with the demo's limits (until interrupted, unless `prevent_thread_lock`)."""
    app.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_FILE_SIZE,
        # Gradio's component server reads a request whole before any check: bounded here.
        app_kwargs={"middleware": [Middleware(ComponentServerGuard)]},
        show_error=True,
        ssr_mode=False,
        prevent_thread_lock=prevent_thread_lock,
        css=CSS,
        js=JS,
    )


def check_port(host: str, port: int) -> None:
    """A one-line ZooError now if `host:port` cannot be served (taken, or not this machine's)."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as error:
        raise ZooError(
            f"cannot serve on {host}:{port} ({error.strerror or error}); "
            "stop what uses it or pick another --port"
        ) from None


def launch(
    registry: Registry,
    weights_dir: Path,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
) -> None:
    """`zoo demo`: serve the demo for the weights in `weights_dir` until interrupted, building
    no model above `max_parameters`."""
    if not Path(weights_dir).is_dir():
        raise ZooError(f"weights folder {weights_dir} does not exist")
    check_port(host, port)
    shelf = WeightsShelf(registry, weights_dir, max_parameters)
    app = build_app(shelf)
    try:
        serve(app, host, port, share, prevent_thread_lock=True)
        shelf.warm()  # the page is served meanwhile: the first answer will not wait for it
        app.block_thread()
    finally:  # Ctrl-C at any point stops the server, so the process can end
        app.close()
