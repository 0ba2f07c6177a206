"""One writer at a time: an exclusive lock on what a command writes (a run folder, a weights
file), held by a lock file beside it through `fcntl.flock`. The kernel lets go of the lock when
the process ends, however it ends, so a killed run never leaves one behind; a second writer is
refused at once in one line, not made to wait."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zoo.errors import ZooError


def lock_path(target: Path) -> Path:
    """The lock file of `target`: a hidden file beside it."""
    return target.parent / f".{target.name}.lock"


@contextmanager
def exclusive(target: Path, holder: str, hint: str) -> Iterator[None]:
    """Hold `target`'s lock while the block runs, or raise a ZooError naming the process that
    holds it (`holder` says what it is, `hint` what to do). The lock file, and the folders
    made for it, are removed when the block ends."""
    target = Path(target)
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(target)
    try:
        fd = _acquire(path, target, holder, hint)
    except BaseException:
        _remove_empty(made)
        raise
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: a waiting opener retries (_acquire)
        os.close(fd)
        _remove_empty(made)


def _acquire(path: Path, target: Path, holder: str, hint: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ZooError(f"{target} is in use by another {holder} (pid {pid}); {hint}") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # its last holder removed it as we opened it
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # the deepest first
        try:
            folder.rmdir()
        except OSError:  # not empty (the run wrote into it), or already gone
            return
