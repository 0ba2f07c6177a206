"""The Classify tab's work: decode what the user gave (an upload, a paste, a webcam shot or a
drawing), run concurrent requests as one batch per model, and show what the model saw."""

from __future__ import annotations

import hashlib
import io
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps

from zoo import preprocess
from zoo.demo.shelf import WeightsShelf
from zoo.errors import ZooError
from zoo.preprocess import open_image
from zoo.specs import InputSpec
from zoo.weights import atomic_write

MAX_PIXELS = 50_000_000  # refuse larger images from their header: a 10000x10000 upload is 100M
DISPLAY_SIZE = 224  # the model's view is shown at least this large, pixels kept sharp
DRAWING_MARGIN = 0.15  # white space kept around a drawing's ink, as in the digits set

Result = tuple[dict[str, float], str, str]  # top-5, the model's view as a PNG file, latency


def read_upload(upload: str | dict[str, Any] | None) -> Image.Image:
    """An uploaded, pasted or webcam image (a path, or gradio's file data), decoded; a ZooError
    naming only the file if it is not a readable image."""
    path = upload.get("path") if isinstance(upload, dict) else upload
    if not path:
        raise ZooError("no image: upload, paste or take a picture first")
    name = (upload.get("orig_name") if isinstance(upload, dict) else None) or Path(path).name
    try:
        return open_image(path, max_pixels=MAX_PIXELS)
    except ZooError as error:
        raise ZooError(str(error).replace(str(Path(path)), name)) from None


def read_drawing(sketch: dict[str, Any] | None) -> Image.Image:
    """A sketchpad drawing as a digit in the datasets' convention: light ink on black, cropped
    square around the ink with a margin."""
    composite = (sketch or {}).get("composite")
    if not composite:
        raise ZooError("the sketchpad is empty: draw a digit first")
    ink = ImageOps.invert(read_upload(composite).convert("L"))
    box = ink.getbbox()
    if box is None:
        raise ZooError("the sketchpad is empty: draw a digit first")
    ink = ink.crop(box)
    side = round(max(ink.size) * (1 + 2 * DRAWING_MARGIN))
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


def classify_batch(
    shelf: WeightsShelf,
    names: list[str],
    inputs: list[Any],
    read: Callable[[Any], Image.Image],
    views: Path,
) -> list[Result | ZooError]:
    """Top-5 classes, the model's view (a PNG in `views`) and the latency for each request, or
    its error. Requests for the same model share one forward pass."""
    started = time.perf_counter()
    results: list[Result | ZooError | None] = [None] * len(names)
    by_model: dict[str, list[tuple[int, Image.Image]]] = defaultdict(list)
    for i, (name, given) in enumerate(zip(names, inputs, strict=True)):
        try:
            image = read(given)
        except ZooError as error:
            results[i] = error
            continue
        by_model[name].append((i, image))
    for name, requests in by_model.items():
        try:
            classifier = shelf.get(name)
        except ZooError as error:
            for i, _ in requests:
                results[i] = error
            continue
        images = [classifier.to_uint8(image) for _, image in requests]
        batch = classifier.inputs(images)
        forward = time.perf_counter()
        probabilities = classifier.probabilities_of(batch)
        forward_ms = (time.perf_counter() - forward) * 1000
        total_ms = (time.perf_counter() - started) * 1000
        latency = (
            f"{total_ms:.1f} ms in all; the forward pass took {forward_ms:.1f} ms "
            f"for a batch of {len(images)}"
        )
        for (i, _), x, p in zip(requests, batch, probabilities, strict=True):
            view = save_view(model_view(x, classifier.input), views)
            results[i] = (classifier.top(p, k=5), view, latency)
    return results  # type: ignore[return-value]
