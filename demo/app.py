"""`zoo demo`: the Gradio app. Classify (upload, paste, webcam, sketchpad), Models (a card per
weights file), Inspect (the LeNet tutorial's views of a model) and Backprop (the orange graph),
with named API endpoints; prediction requests are batched on the server."""

from __future__ import annotations

import html
import os
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from zoo.demo import backprop, cards, inspector
from zoo.demo.classify import Classify, Reader, read_drawing, read_upload
from zoo.demo.components import lenient
from zoo.demo.examples import default_folder, write_examples
from zoo.demo.intake import Uploads
from zoo.demo.shelf import WeightsShelf
from zoo.errors import ZooError
from zoo.registry import Registry

MAX_FILE_SIZE = "10mb"
MAX_BATCH_SIZE = 16  # concurrent predictions that share one forward pass
QUEUE_SIZE = 64  # requests waiting beyond this are refused ("queue is full")
CONCURRENCY = 2  # events of one kind running at once (forward passes run one at a time)
# The model's views, content-addressed, beside gradio's own files (GRADIO_TEMP_DIR).
VIEWS = Path(gr.utils.get_upload_folder()) / "zoo-model-views"
# Every prediction event runs in this group; each decodes its own input, then waits for a
# forward pass shared with the others (demo/batching.py), so up to a batch can run at once.
PREDICTION = {"concurrency_id": "predict", "concurrency_limit": MAX_BATCH_SIZE}


def _error(message: str) -> gr.Error:
    """A user's mistake as a gr.Error: escaped (gradio renders it as HTML), no server traceback."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def _user_errors(run: Callable[..., Any]) -> Callable[..., Any]:
    """`run`, with a ZooError shown to the user as a gr.Error."""

    def wrapped(*args: Any) -> Any:
        try:
            return run(*args)
        except ZooError as error:
            raise _error(str(error)) from None

    return wrapped


def _endpoint(classify: Classify, read: Reader, outputs: int) -> Callable[[Any, Any], Any]:
    """A prediction event's function: the first `outputs` of (top 5, model's view, latency)."""

    def run(name: Any, given: Any) -> Any:
        try:
            result = classify(name, given, read)
        except ZooError as error:
            raise _error(str(error)) from None
        except Exception:  # a bug, not the user's doing: logged here, one line for the user
            traceback.print_exc()
            raise _error("the server failed on this request") from None
        return result[0] if outputs == 1 else result[:outputs]

    return run


def _classify_tab(classify: Classify, examples: list[Path]) -> gr.Dropdown:
    choices = classify.shelf.choices()
    model = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Model")
    with gr.Row():
        with gr.Column():
            with gr.Tab("Image"):
                image = lenient(
                    gr.Image(
                        type="filepath",
                        sources=["upload", "clipboard", "webcam"],
                        label="Upload, paste or take a picture",
                        elem_id="upload",
                        height=320,
                    )
                )
                image_button = gr.Button("Classify image", variant="primary")
                gr.Examples([[str(path)] for path in examples], inputs=image, examples_per_page=12)
            with gr.Tab("Draw"):
                sketch = lenient(
                    gr.Sketchpad(
                        type="filepath",
                        format="png",
                        canvas_size=(280, 280),
                        brush=gr.Brush(default_size=16, colors=["#000000"], color_mode="fixed"),
                        label="Draw a digit",
                        elem_id="sketchpad",
                    )
                )
                sketch_button = gr.Button("Classify drawing", variant="primary")
        with gr.Column():
            label = gr.Label(num_top_classes=5, label="Top 5", elem_id="prediction")
            seen = gr.Image(label="What the model saw", interactive=False, format="png")
            latency = gr.Textbox(label="Latency", interactive=False)
    outputs = [label, seen, latency]
    # The prediction events take gradio's file data as it comes (preprocess=False): gradio
    # decodes nothing (no editor layer, no unchecked file); `intake.Uploads` opens what is due.
    image_button.click(
        _endpoint(classify, read_upload, 3),
        [model, image],
        outputs,
        api_name="classify",
        preprocess=False,
        **PREDICTION,
    )
    sketch_button.click(
        _endpoint(classify, read_drawing, 3),
        [model, sketch],
        outputs,
        api_name="classify_drawing",
        preprocess=False,
        **PREDICTION,
    )
    gr.on(
        triggers=[],
        fn=_endpoint(classify, read_upload, 1),
        inputs=[model, image],
        outputs=[label],
        api_name="predict",
        preprocess=False,
        **PREDICTION,
    )
    return model


def _models_tab(app: gr.Blocks, registry: Registry, shelf: WeightsShelf, runs_dir: Path) -> None:
    refresh = gr.Button("Reload", size="sm")

    @gr.render(triggers=[app.load, refresh.click])
    def _cards() -> None:
        paths = shelf.files()
        if not paths:
            gr.Markdown(f"No weights in {shelf.folder}: `zoo train lenet` makes one.")
        for path in paths:
            found = cards.card(registry, path, runs_dir)
            with gr.Group():
                gr.Markdown(f"### {found.title}\n\n{found.markdown}")
                if found.curves is not None:
                    gr.Image(found.curves, label="Training curves", interactive=False)


def _inspect_tab(registry: Registry) -> None:
    names = [spec.name for spec in registry.find()]
    first = "lenet" if "lenet" in names else names[0]
    shown = inspector.inspect_model(registry, first)  # the tab opens on the tutorial's LeNet
    with gr.Row():
        # Names are checked by the handler, which answers an unknown one in a short line.
        model = gr.Dropdown(names, value=first, label="Model", allow_custom_value=True)
        inspect_button = gr.Button("Inspect", variant="primary")
    summary = gr.Markdown(shown.summary)
    with gr.Row():
        tree = gr.Code(shown.tree, label="Module tree (print(model))", language=None)
        table = gr.Dataframe(
            shown.parameters, headers=["parameter", "shape", "elements"], label="Parameters"
        )
    graph = gr.Code(
        shown.graph, label="Autograd graph of MSELoss(model(randn), randn)", language=None
    )
    with gr.Row():
        # Any model's parameter is accepted (the choices are the shown model's, per session):
        # a fresh client asks /gradient for resnet18's fc.bias without inspecting it first.
        parameter = gr.Dropdown(
            **_parameter_choices(shown), label="Parameter", allow_custom_value=True
        )
        grad_button = gr.Button("zero_grad(), then loss.backward()")
    with gr.Row():
        before = gr.Code(label="grad after zero_grad()", language=None)
        after = gr.Code(label="grad after loss.backward()", language=None)

    def inspect(name: str):
        found = inspector.inspect_model(registry, name)
        params = gr.Dropdown(**_parameter_choices(found))
        return found.tree, found.parameters, found.summary, found.graph, params

    gr.on(
        [inspect_button.click, model.change],
        _user_errors(inspect),
        model,
        [tree, table, summary, graph, parameter],
        api_name="inspect",
    )
    grad_button.click(
        _user_errors(lambda name, param: inspector.gradient_before_after(registry, name, param)),
        [model, parameter],
        [before, after],
        api_name="gradient",
    )


def _parameter_choices(found: inspector.Inspection) -> dict[str, Any]:
    """The parameter dropdown's choices, the first one chosen."""
    names = [row[0] for row in found.parameters]
    return {"choices": names, "value": names[0] if names else None}


def _backprop(quantity: float | None, price: float | None, tax: float | None) -> tuple:
    """The Backprop tab's outputs: total, its three derivatives, the diagram, the graph."""
    if quantity is None or price is None or tax is None:
        raise _error("enter a quantity, a unit price and a tax")
    result = backprop.oranges(quantity, price, tax)
    derivatives = tuple(result.grads[name] for name in ("quantity", "price", "tax"))
    return (result.values["total"], *derivatives, backprop.diagram(result), result.graph)


def _backprop_tab() -> None:
    gr.Markdown(
        "Oranges: **cost = quantity x price**, **total = cost x tax**. Autograd computes how "
        "much the total moves when each input moves by one."
    )
    seed = (2, 100, 1.1)  # the tutorial's oranges: 220 in all, 110 an orange, 2.2 a unit of price
    shown = _backprop(*seed)
    with gr.Row():
        quantity = gr.Number(seed[0], label="quantity")
        price = gr.Number(seed[1], label="unit price")
        tax = gr.Number(seed[2], label="tax")
    button = gr.Button("Forward and backward", variant="primary")
    picture = gr.HTML(shown[4])
    with gr.Row():
        total = gr.Number(shown[0], label="total", precision=6)
        d_quantity = gr.Number(shown[1], label="d total / d quantity", precision=6)
        d_price = gr.Number(shown[2], label="d total / d price", precision=6)
        d_tax = gr.Number(shown[3], label="d total / d tax", precision=6)
    graph = gr.Code(shown[5], label="total.grad_fn, walked", language=None)
    button.click(
        _backprop,
        [quantity, price, tax],
        [total, d_quantity, d_price, d_tax, picture, graph],
        api_name="backprop",
    )


def build_app(
    registry: Registry,
    weights_dir: Path,
    examples_dir: Path | None = None,
    runs_dir: Path | None = None,
) -> gr.Blocks:
    """The demo's Blocks: weights from `weights_dir`, training curves from `runs_dir`
    (default: runs/ beside the weights folder), example images cached in `examples_dir`."""
    weights_dir = Path(weights_dir)
    shelf = WeightsShelf(registry, weights_dir)
    runs_dir = Path(runs_dir) if runs_dir else weights_dir.absolute().parent / "runs"
    examples_dir = Path(examples_dir or default_folder())
    examples = write_examples(registry, examples_dir)
    uploads = Uploads([gr.utils.get_upload_folder(), examples_dir])
    classify = Classify(shelf, uploads, VIEWS, MAX_BATCH_SIZE)
    with gr.Blocks(title="zoo demo", analytics_enabled=False) as app:
        gr.Markdown("# zoo\nThe model zoo's models, trained by `zoo train`, at work.")
        with gr.Tab("Classify"):
            model = _classify_tab(classify, examples)
        with gr.Tab("Models"):
            _models_tab(app, registry, shelf, runs_dir)
        with gr.Tab("Inspect"):
            _inspect_tab(registry)
        with gr.Tab("Backprop"):
            _backprop_tab()

        def reload_choices() -> gr.Dropdown:
            choices = shelf.choices()
            return gr.Dropdown(choices, value=choices[0][1] if choices else None)

        app.load(reload_choices, None, model, api_visibility="undocumented")
    app.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return app


# Show small images (the 8x8 digits) at the size of their box, pixels sharp.
CSS = "#upload img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }"


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
        show_error=True,
        ssr_mode=False,
        prevent_thread_lock=prevent_thread_lock,
        css=CSS,
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
) -> None:
    """`zoo demo`: serve the demo for the weights in `weights_dir` until interrupted."""
    if not Path(weights_dir).is_dir():
        raise ZooError(f"weights folder {weights_dir} does not exist")
    check_port(host, port)
    serve(build_app(registry, weights_dir), host, port, share)
