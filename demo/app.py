"""`zoo demo`: a Gradio app that classifies images with the trained `.safetensors` files."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from zoo.errors import ZooError
from zoo.inference import Classifier
from zoo.preprocess import open_image
from zoo.registry import Registry

MAX_FILE_SIZE = "20mb"


class WeightsShelf:
    """The weights files of a folder, each loaded once (and again when the file changes)."""

    def __init__(self, registry: Registry, folder: Path) -> None:
        self.registry = registry
        self.folder = folder
        self._loaded: dict[str, tuple[float, Classifier]] = {}

    def names(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob("*.safetensors"))

    def get(self, name: str) -> Classifier:
        path = self.folder / name
        if not name or path.parent != self.folder or not path.is_file():
            raise ZooError(f"no weights file {name!r} in {self.folder}")
        mtime = path.stat().st_mtime
        cached = self._loaded.get(name)
        if cached is None or cached[0] != mtime:
            cached = (mtime, Classifier.load(self.registry, path))
            self._loaded[name] = cached
        return cached[1]


def classify(shelf: WeightsShelf, weights_name: str, image_path: str | None) -> dict[str, float]:
    """Top-5 classes of an uploaded image, as gr.Label takes them."""
    if not image_path:
        raise gr.Error("Upload an image first.")
    try:
        classifier = shelf.get(weights_name)
        image = open_image(image_path)
        probabilities = classifier.probabilities([classifier.to_uint8(image)])[0]
    except ZooError as error:
        raise gr.Error(str(error)) from None
    return classifier.top(probabilities, k=5)


def build_app(registry: Registry, weights_dir: Path) -> gr.Blocks:
    """The demo's Blocks, reading weights from `weights_dir`."""
    shelf = WeightsShelf(registry, Path(weights_dir))
    names = shelf.names()
    with gr.Blocks(title="zoo demo") as app:
        gr.Markdown("# zoo\nClassify an image with a model trained by `zoo train`.")
        with gr.Row():
            with gr.Column():
                weights = gr.Dropdown(names, value=names[0] if names else None, label="Weights")
                image = gr.Image(type="filepath", label="Image", sources=["upload", "clipboard"])
                button = gr.Button("Classify", variant="primary")
            label = gr.Label(num_top_classes=5, label="Prediction")
        button.click(
            lambda w, i: classify(shelf, w, i), [weights, image], label, api_name="predict"
        )
    return app


def launch(
    registry: Registry,
    weights_dir: Path,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
) -> None:
    """Serve the demo until interrupted."""
    build_app(registry, weights_dir).launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_FILE_SIZE,
        show_error=True,
    )
