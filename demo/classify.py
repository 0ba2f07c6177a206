"""The Classify tab's work: decode what the user gave (an upload, a paste, a webcam shot or a
drawing), each request alone, then classify it in a forward pass shared with the concurrent
requests for the same model, and show what the model saw."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps

from zoo import preprocess
from zoo.demo.batching import Batcher
from zoo.demo.intake import Uploads, kind
from zoo.demo.shelf import WeightsShelf
from zoo.errors import ZooError
from zoo.inference import Classifier
from zoo.specs import InputSpec
from zoo.weights import atomic_write

DISPLAY_SIZE = 224  # the model's view is shown at least this large, pixels kept sharp
DRAWING_MARGIN = 0.15  # white space kept around a drawing's ink, as in the digits set
DRAWING_SIZE = 448  # a drawing is scaled down to fit this square (a 280x280 canvas is left as is)
EMPTY_DRAWING = "the sketchpad is empty: draw a digit first"
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
    ink = ImageOps.invert(uploads.open(sketch["composite"]).convert("L"))
    box = ink.getbbox()
    if box is None:
        raise ZooError(EMPTY_DRAWING)
    ink = ink.crop(box)
    side = max(ink.size) * (1 + 2 * DRAWING_MARGIN)
    scale = min(1.0, DRAWING_SIZE / side)
    if scale < 1:  # a long thin stroke is not padded to a huge square
        size = (max(1, round(ink.width * scale)), max(1, round(ink.height * scale)))
        ink = ink.resize(size, Image.Resampling.BOX)
    side = round(side * scale)
    square = Image.new("L", (side, side), 0)
    square.paste(ink, ((side - ink.width) // 2, (side - ink.height) // 2))
    return square


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
    """What one request gets from a forward pass: its model input, its probabilities, and the
    pass's time and size."""

    x: torch.Tensor
    probabilities: torch.Tensor
    forward_ms: float
    batch_size: int


def _forward(requests: list[tuple[Classifier, torch.Tensor]]) -> list[_Pass]:
    classifier = requests[0][0]  # a batch holds one model's requests (the batcher's key)
    batch = classifier.inputs([image for _, image in requests])
    started = time.perf_counter()
    probabilities = classifier.probabilities_of(batch)
    forward_ms = (time.perf_counter() - started) * 1000
    return [
        _Pass(x, p, forward_ms, len(requests)) for x, p in zip(batch, probabilities, strict=True)
    ]


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
        started = time.perf_counter()
        classifier = self.shelf.get(name)
        image = self._decode(classifier, read, given)
        done = self._batcher(id(classifier), (classifier, image))
        view = save_view(model_view(done.x, classifier.input), self.views)
        total_ms = (time.perf_counter() - started) * 1000
        latency = (
            f"{total_ms:.1f} ms in all; the forward pass took {done.forward_ms:.1f} ms "
            f"for a batch of {done.batch_size}"
        )
        return classifier.top(done.probabilities, k=5), view, latency

    def _decode(self, classifier: Classifier, read: Reader, given: Any) -> torch.Tensor:
        """The model's uint8 image of `given`; the decoded file is freed before the request
        waits for its forward pass."""
        with self._decoding:
            decoded = read(self.uploads, given)
            try:
                return classifier.to_uint8(decoded)
            except Exception:  # PIL's conversions refuse some modes, and odd EXIF data
                raise ZooError(f"a {decoded.mode} image that cannot be converted") from None
