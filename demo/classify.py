"""The Classify tab's work: decode what the user gave (an upload, a paste, a webcam shot or a
drawing), each request alone, then classify it in a forward pass shared with the concurrent
requests for the same model, and show what the model saw."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from zoo.data import preprocess
from zoo.data.preprocess import INK_MARGIN, INK_SIDE, ink_square, open_image, pil_to_uint8
from zoo.demo.batching import Batcher
from zoo.demo.intake import Uploads, kind
from zoo.demo.shelf import WeightsShelf
from zoo.demo.sketchpad import Drawings
from zoo.errors import ZooError
from zoo.serving.inference import Classifier
from zoo.specs import InputSpec
from zoo.trust.explain import explain, overlay
from zoo.util.files import atomic_write

DISPLAY_SIZE = 224  # the model's view is shown at least this large, pixels kept sharp
DRAWING_MARGIN = INK_MARGIN  # space kept around a drawing's ink: the digits set's fill their box
DRAWING_SIZE = INK_SIDE  # a drawing is scaled down to fit this square (a 280x280 canvas is not)
EMPTY_DRAWING = "the sketchpad is empty: draw a digit first"
DRAWN = "zoo.drawn"  # marks a decoded drawing (PIL image info)
MAX_DRAWING_BYTES = 10_000_000  # as an upload's cap
DECODERS = 2  # requests decoding at once (a 50-megapixel image takes 150-200 MB)

Result = tuple[dict[str, float], str, str]  # top-5, the model's view as a PNG file, latency
Reader = Callable[[Uploads, Any], Image.Image]


def read_upload(uploads: Uploads, given: Any) -> Image.Image:
    """An uploaded, pasted or webcam image (gradio's file data), decoded."""
    return uploads.open(given)


def read_drawing(uploads: Uploads, sketch: Any) -> Image.Image:
    """A sketchpad drawing (its `composite` only: the layers are never decoded) as a digit in
    the datasets' convention: light ink on black, cropped square around the ink with a margin,
    at most `DRAWING_SIZE` square."""
    if sketch is None:
        raise ZooError(EMPTY_DRAWING)
    if not isinstance(sketch, dict):
        raise ZooError(
            f"the drawing must be a sketchpad value {{composite: image}}, not {kind(sketch)}"
        )
    if not sketch.get("composite"):
        raise ZooError(EMPTY_DRAWING)
    composite = sketch["composite"]
    if isinstance(composite, bytes):  # the browser's drawing, sent ahead (see sketch_blobs)
        if len(composite) > MAX_DRAWING_BYTES:
            raise ZooError("the drawing is too large")
        drawn = open_image(io.BytesIO(composite), name="the drawing")
    else:
        drawn = uploads.open(composite)
    # Transparency is white paper; a large canvas is reduced first, in its own bit depth.
    paper = pil_to_uint8(drawn, channels=1, fit=DRAWING_SIZE)[0].numpy()
    square = ink_square(paper, DRAWING_MARGIN, DRAWING_SIZE)
    if square is None:
        raise ZooError(EMPTY_DRAWING)
    square.info[DRAWN] = True  # reaches the model at its training images' resolution
    return square


def sketch_blobs(drawings: Drawings, value: Any) -> Any:
    """A sketchpad value as `read_drawing` takes it. The browser sends the drawing's images
    ahead (`accept_blobs`, kept in `drawings`) and then only their id, which gradio's own
    preprocessing would resolve: here the composite alone is taken out (and let go); any
    other value passes through to be checked."""
    if isinstance(value, dict) and isinstance(value.get("id"), str) and not value.get("composite"):
        return {"composite": drawings.take(value["id"])}
    return value


def model_view(x: torch.Tensor, spec: InputSpec) -> Image.Image:
    """One model input (C, size, size), as `prepare` made it, de-normalised for display."""
    view = preprocess.view(x, spec)
    scale = max(1, -(-DISPLAY_SIZE // spec.size))
    return view.resize((spec.size * scale,) * 2, Image.Resampling.NEAREST)


def save_view(image: Image.Image, folder: Path) -> str:
    """`image` as a PNG named by its content, written atomically: gradio serves the file while
    a concurrent request with the same view may be producing it again."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    path = folder / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
    if not path.is_file():
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return str(path)


@dataclass
class _Pass:
    """What one request gets from a forward pass: its model input, its calibrated
    probabilities, whether it is unknown, where the model looked (a heat map, when asked for),
    and the pass's time and size."""

    x: torch.Tensor
    probabilities: torch.Tensor
    unknown: bool
    heatmap: torch.Tensor | None
    method: str | None
    forward_ms: float
    batch_size: int


def _forward(requests: list[tuple[Classifier, torch.Tensor, bool]]) -> list[_Pass]:
    classifier, _, explaining = requests[0]  # a batch holds one model's requests, all alike
    batch = classifier.inputs([image for _, image, _ in requests])
    started = time.perf_counter()
    predictions = classifier.predict_batch(batch)
    forward_ms = (time.perf_counter() - started) * 1000
    heatmaps: list[torch.Tensor | None] = [None] * len(requests)
    method = None
    if explaining:  # in the same worker: Grad-CAM's hooks must not see another pass
        explanation = explain(classifier, batch)
        heatmaps, method = list(explanation.heatmaps), explanation.method
    return [
        _Pass(x, p, bool(u), h, method, forward_ms, len(requests))
        for x, p, u, h in zip(
            batch, predictions.probabilities, predictions.unknown, heatmaps, strict=True
        )
    ]


@dataclass
class ShownAnswer:
    """One image through one model: its answer and how it was reached."""

    name: str  # the weights file (or the ImageNet model's name)
    classifier: Classifier
    top: dict[str, float]
    unknown: bool
    view: Image.Image  # what the model saw
    looked: Image.Image | None  # where it looked: the heat map over the view
    method: str | None
    forward_ms: float
    total_ms: float
    batch_size: int

    @property
    def latency(self) -> str:
        return (
            f"{self.total_ms:.1f} ms in all; the forward pass took {self.forward_ms:.1f} ms "
            f"for a batch of {self.batch_size}"
        )


class Classify:
    """Classifies one request: decoded and checked alone (a bad one fails with its own
    message), then batched with the concurrent requests for the same model."""

    def __init__(self, shelf: WeightsShelf, uploads: Uploads, views: Path, max_batch: int):
        self.shelf = shelf
        self.uploads = uploads
        self.views = views
        self._batcher = Batcher(_forward, max_batch)
        self._decoding = threading.BoundedSemaphore(DECODERS)

    def __call__(self, name: Any, given: Any, read: Reader) -> Result:
        """Top-5 classes, the model's view (a PNG in `views`) and the latency, or a ZooError
        naming only what the user sent."""
        answer = self.answer(name, given, read)
        return answer.top, save_view(answer.view, self.views), answer.latency

    def answer(self, name: Any, given: Any, read: Reader, explaining: bool = False) -> ShownAnswer:
        """The ShownAnswer for one request; with `explaining`, where the model looked too."""
        started = time.perf_counter()
        if name is None or name == "":  # a page whose load has not chosen yet, or an API call
            name = self.shelf.default()  # that names no model: the page's own default
        classifier = self.shelf.get(name)
        image = self._decode(classifier, read, given)
        return self._run(name, classifier, image, explaining, started)

    def compare(self, given: Any, read: Reader) -> list[ShownAnswer | ZooError]:
        """The image through every model on offer, each with where it looked: an ShownAnswer per
        model, or the error that model gave (an unusable file). The image is decoded once,
        made into each model's uint8 input, and freed before the forward passes."""
        started = time.perf_counter()
        inputs: list[tuple[str, Classifier, torch.Tensor] | ZooError] = []
        with self._decoding:
            decoded = read(self.uploads, given)
            for name in self.shelf.names():
                try:
                    classifier = self.shelf.get(name)
                    inputs.append((name, classifier, self._uint8(classifier, decoded)))
                except ZooError as error:
                    inputs.append(ZooError(f"{name}: {error}"))
            del decoded
        decode_s = time.perf_counter() - started
        answers: list[ShownAnswer | ZooError] = []
        for item in inputs:
            if isinstance(item, ZooError):
                answers.append(item)
                continue
            # Each model's latency: the shared decode, then its own pass.
            try:
                answers.append(self._run(*item, True, time.perf_counter() - decode_s))
            except Exception:  # one model's failure is its row's, not the whole table's
                traceback.print_exc()
                answers.append(ZooError(f"{item[0]}: the model failed on this image"))
        return answers

    def _decode(self, classifier: Classifier, read: Reader, given: Any) -> torch.Tensor:
        """The model's uint8 image of `given`; the decoded file is freed before the request
        waits for its forward pass."""
        with self._decoding:
            return self._uint8(classifier, read(self.uploads, given))

    @staticmethod
    def _uint8(classifier: Classifier, decoded: Image.Image) -> torch.Tensor:
        try:
            return classifier.model_image(decoded, at_source=decoded.info.get(DRAWN, False))
        except Exception:  # PIL's conversions refuse some modes, and odd EXIF data
            raise ZooError(f"a {decoded.mode} image that cannot be converted") from None

    def _run(
        self, name: str, classifier: Classifier, image: torch.Tensor, explaining: bool, started
    ) -> ShownAnswer:
        done = self._batcher((id(classifier), explaining), (classifier, image, explaining))
        view = model_view(done.x, classifier.input)
        heat = done.heatmap
        looked = overlay(view, heat) if heat is not None and bool(heat.isfinite().all()) else None
        return ShownAnswer(
            name,
            classifier,
            classifier.top(done.probabilities, k=5),
            done.unknown,
            view,
            looked,
            done.method,
            done.forward_ms,
            (time.perf_counter() - started) * 1000,
            done.batch_size,
        )
