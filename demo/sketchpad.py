"""The Draw tab's sketchpad: a bounded store for the images its browser sends ahead.

Gradio's image editor receives a drawing through its `accept_blobs` server function (reached
at `/gradio_api/component_server`): one post per image (background, composite, layer) under a
fresh id per change, kept in memory until an event takes that id. As shipped it grows the
layer list to any index a client names and keeps every id for ever, whoever sent it. Here
only what a real canvas of this app sends is taken: the three kinds, layer 0 alone (the
sketchpad has no layers), an alphanumeric id, one PNG, WEBP or JPEG of at most
`MAX_BLOB_BYTES` whose header (read, not decoded) is within `MAX_SIDE`; and at most
`PER_SESSION` drawings a session and `MAX_PENDING_BYTES` in all are kept, each for `TTL_S`.
"""

from __future__ import annotations

import io
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import gradio as gr
from fastapi import HTTPException
from gradio.components.base import server
from PIL import Image, UnidentifiedImageError

from zoo.data.preprocess import MAX_PIXELS

KINDS = ("background", "composite", "layer")
MAX_ID = 32  # characters of a drawing's id (the browser's are about 10)
MAX_BLOB_BYTES = 2_000_000  # one image of a 280x280 canvas is under 0.3 MB
MAX_SIDE = 4096  # pixels, from the image's header
FORMATS = ("PNG", "WEBP", "JPEG")
PER_SESSION = 4  # drawings kept for one session (the browser sends one per change)
MAX_PENDING_BYTES = 32_000_000  # kept in all, the oldest let go first
TTL_S = 300.0  # a drawing no event took in this time is let go


@dataclass
class _Drawing:
    session: str
    sent: float
    composite: bytes | None = None


class Drawings:
    """The drawings a sketchpad's browser sent ahead, within the module's limits. `attach`
    puts its `accept_blobs` in the place of gradio's; an event takes a drawing's composite
    by its id (`take`): the background and layer images are checked and let go, as nothing
    reads them."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, _Drawing] = OrderedDict()
        self._lock = threading.Lock()

    def attach(self, sketchpad: gr.Sketchpad) -> gr.Sketchpad:
        """`sketchpad`, its images sent ahead kept here (gradio's component server calls the
        component's `accept_blobs` by name). No subclass: gradio writes a stub file beside
        the module of every component class."""
        sketchpad.accept_blobs = self.accept_blobs  # type: ignore[method-assign]
        return sketchpad

    @server
    def accept_blobs(self, data: Any) -> None:
        """Keep one image the browser sends ahead of its event (gradio's wire format: form
        fields id, type, index and session_hash, and one file), or refuse it (400, 413)."""
        try:
            fields, files = data.data, data.files
            kind, blob_id = fields["type"], fields["id"]
            session = str(fields.get("session_hash", ""))
        except (AttributeError, KeyError, TypeError):
            raise HTTPException(400, "not a drawing upload") from None
        if kind not in KINDS or not isinstance(blob_id, str) or len(files) != 1:
            raise HTTPException(400, "not a drawing upload")
        if not (0 < len(blob_id) <= MAX_ID and blob_id.isascii() and blob_id.isalnum()):
            raise HTTPException(400, "not a drawing id")
        if kind == "layer" and fields.get("index") != "0":
            raise HTTPException(400, "the sketchpad has one layer")
        blob = files[0][1]
        if len(blob) > MAX_BLOB_BYTES:
            raise HTTPException(413, "the drawing is too large")
        _check_header(blob)
        with self._lock:
            now = time.monotonic()
            self._let_go(now, session, blob_id)
            drawing = self._kept.pop(blob_id, None) or _Drawing(session, now)
            if kind == "composite":
                drawing.composite = blob
            drawing.sent = now
            self._kept[blob_id] = drawing  # the newest last

    def take(self, blob_id: str) -> bytes | None:
        """The composite image sent ahead under `blob_id`, which is then let go; None if
        there is none (never sent, or let go)."""
        with self._lock:
            drawing = self._kept.pop(blob_id, None)
        return drawing.composite if drawing is not None else None

    def _let_go(self, now: float, session: str, filling: str) -> None:
        """Drop the drawings too old, then the oldest beyond the session's count and beyond
        the bytes kept in all (never `filling`, the one being sent)."""
        for blob_id, drawing in list(self._kept.items()):
            if now - drawing.sent > TTL_S:
                del self._kept[blob_id]
        mine = [k for k, d in self._kept.items() if d.session == session and k != filling]
        for blob_id in mine[: max(0, len(mine) - PER_SESSION + 1)]:
            del self._kept[blob_id]
        total = sum(len(d.composite or b"") for d in self._kept.values())
        for blob_id in [k for k in self._kept if k != filling]:
            if total + MAX_BLOB_BYTES <= MAX_PENDING_BYTES:
                break
            total -= len(self._kept.pop(blob_id).composite or b"")

    def __len__(self) -> int:
        return len(self._kept)


def _check_header(blob: bytes) -> None:
    """A 400 unless `blob` is a PNG, WEBP or JPEG image; a 413 if its header says it is over
    `MAX_SIDE` or the pixel cap of uploads (nothing is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(blob), formats=FORMATS) as image:
                width, height = image.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise HTTPException(413, "the drawing is too large") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise HTTPException(400, "the drawing is not an image") from None
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise HTTPException(413, f"the drawing is {width}x{height}, too large")
