"""The Draw tab's sketchpad, with a bounded store for the images the browser sends ahead.

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
from gradio.components.image_editor import EditorDataBlobs
from PIL import Image, UnidentifiedImageError

from zoo.data.preprocess import MAX_PIXELS

KINDS = ("background", "composite", "layer")
MAX_ID = 32  # characters of a drawing's id (the browser's are about 10)
MAX_BLOB_BYTES = 2_000_000  # one image of a 280x280 canvas is under 0.3 MB
MAX_SIDE = 4096  # pixels, from the image's header
FORMATS = ("PNG", "WEBP", "JPEG")
PER_SESSION = 4  # drawings kept for one session (the browser sends one per change)
MAX_PENDING_BYTES = 64_000_000  # kept in all, the oldest let go first
TTL_S = 300.0  # a drawing no event took in this time is let go


@dataclass
class _Pending:
    session: str
    sent: float
    size: int


class BoundedSketchpad(gr.Sketchpad):
    """A `gr.Sketchpad` whose `accept_blobs` takes only what this app's canvas sends, within
    a size, a count per session and an age (the module's limits)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._blob_lock = threading.Lock()

    # The browser draws it with the image editor's code: a subclass keeps that name.
    def get_block_name(self) -> str:
        return "imageeditor"

    def get_block_class(self) -> str:
        return "imageeditor"

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
        with self._blob_lock:
            self._let_go(time.monotonic(), session, blob_id)
            current = self.blob_storage.get(blob_id) or EditorDataBlobs(
                background=None, layers=[], composite=None
            )
            if kind == "layer":
                current.layers[:] = [blob]
            else:
                setattr(current, kind, blob)
            self.blob_storage[blob_id] = current
            size = len(current.background or b"") + len(current.composite or b"")
            size += sum(len(layer or b"") for layer in current.layers)
            self._pending[blob_id] = _Pending(session, time.monotonic(), size)
            self._pending.move_to_end(blob_id)

    def take(self, blob_id: str) -> bytes | None:
        """The composite image sent ahead under `blob_id` (the rest is never decoded), which
        is then let go; None if there is none."""
        with self._blob_lock:
            self._pending.pop(blob_id, None)
            blobs = self.blob_storage.pop(blob_id, None)
        return blobs.composite if blobs is not None else None

    def _let_go(self, now: float, session: str, keep: str) -> None:
        """Drop the drawings too old, then the oldest beyond the session's count and the
        total's bytes (never `keep`, which is being filled)."""
        for blob_id, pending in list(self._pending.items()):
            if now - pending.sent > TTL_S:
                self._drop(blob_id)
        mine = [k for k, p in self._pending.items() if p.session == session and k != keep]
        for blob_id in mine[: max(0, len(mine) - PER_SESSION + 1)]:
            self._drop(blob_id)
        total = sum(p.size for p in self._pending.values())
        for blob_id in [k for k in self._pending if k != keep]:
            if total + MAX_BLOB_BYTES <= MAX_PENDING_BYTES:
                break
            total -= self._pending[blob_id].size
            self._drop(blob_id)

    def _drop(self, blob_id: str) -> None:
        self._pending.pop(blob_id, None)
        self.blob_storage.pop(blob_id, None)


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
