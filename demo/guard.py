"""A cap on what one request to Gradio's component server may send.

`POST /gradio_api/component_server` reads its whole body before anything checks it: a JSON body
of any size, or a multipart one with up to 1,000 files of `max_file_size` each, all kept in
memory. The demo's only server function there is the sketchpad's `accept_blobs`, which takes
one small image a request (`zoo.demo.sketchpad`), so this pure ASGI middleware refuses a larger
body with 413 from its Content-Length, or as soon as a streamed one grows past the cap.
Gradio offers no setting for it; the middleware is passed to its FastAPI app at launch.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from zoo.demo.sketchpad import MAX_BLOB_BYTES

ROUTE = "/gradio_api/component_server"
MAX_BODY = MAX_BLOB_BYTES + 64_000  # one blob and its form fields


class ComponentServerGuard:
    """Refuses component-server requests whose body is over `max_body` bytes."""

    def __init__(self, app: Any, max_body: int = MAX_BODY) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].rstrip("/").endswith(ROUTE):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _too_large(send)
            return
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:  # a streamed body, longer than it said or unsized
                raise HTTPException(413, "request body too large")
            return message

        await self.app(scope, counted, send)


async def _too_large(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            # Closed after the answer: the server does not read on what it refused.
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"detail":"request body too large"}'})
