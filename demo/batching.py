"""Forward passes shared by concurrent requests, one pass at a time.

Gradio's own batching (`batch=True`) answers every request of a batch with the batch's error,
so one bad upload would fail its neighbours, and gradio_client does not follow chained events
(`.success`) to a batched one. So each request is checked and decoded alone, in its own event
(its error is its own), and only then joins a batch here: the requests for the same model that
wait while a pass runs share the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Out = TypeVar("Out")


class Batcher(Generic[Item, Out]):
    """Calls `run(items)` (one output per item) on one worker thread, at most `max_size` items a
    call; items submitted under the same key while a call runs go together into a later one."""

    def __init__(self, run: Callable[[list[Item]], list[Out]], max_size: int) -> None:
        self.run = run
        self.max_size = max_size
        self._waiting: dict[Hashable, list[tuple[Item, Future[Out]]]] = {}
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None

    def __call__(self, key: Hashable, item: Item) -> Out:
        """`run`'s output for `item`, once a batch with it has run (its error, if it failed)."""
        future: Future[Out] = Future()
        with self._changed:
            self._waiting.setdefault(key, []).append((item, future))
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="forward", daemon=True)
                self._worker.start()
            self._changed.notify()
        return future.result()

    def _next_batch(self) -> list[tuple[Item, Future[Out]]]:
        with self._changed:
            while not self._waiting:
                self._changed.wait()
            key = next(iter(self._waiting))  # the key waiting longest; the rest of it goes last
            waiting = self._waiting.pop(key)
            if len(waiting) > self.max_size:
                self._waiting[key] = waiting[self.max_size :]
            return waiting[: self.max_size]

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                outputs = self.run([item for item, _ in batch])
            except BaseException as error:  # a failed pass fails only the requests it served
                for _, future in batch:
                    future.set_exception(error)
                continue
            for (_, future), output in zip(batch, outputs, strict=True):
                future.set_result(output)
