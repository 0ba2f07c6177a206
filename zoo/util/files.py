"""Atomic file and folder writes (a crash never leaves a half-written one), and reading what zoo
wrote earlier without trusting it."""

from __future__ import annotations

import glob
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from zoo.errors import ZooError


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` with a temporary path beside `path`, then rename it into place; an
    OSError names `path`, not the temporary file.

    A ZooError if `write` wrote another name than `tmp` (`np.savez`, for one, adds `.npz`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        if not tmp.exists():
            _refuse_other_name(tmp, path)
        os.chmod(tmp, 0o666 & ~_umask())  # some writers create 0600 files
        os.replace(tmp, path)
    except BaseException as error:
        for written in (tmp, *path.parent.glob(f"{glob.escape(tmp.name)}?*")):
            Path(written).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename in (None, tmp, str(tmp)):
            error.filename = str(path)  # the file the user knows of
        raise
    return path


def atomic_folder(path: Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` with a new temporary folder beside `path`, then rename it into place,
    replacing a folder already there (the caller decides whether it may be replaced); on any
    failure the temporary folder goes and `path` is as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    old = path.parent / f".{path.name}.{uuid.uuid4().hex}.old"
    try:
        tmp.mkdir()
        write(tmp)
        if path.is_dir():
            os.replace(path, old)  # set aside, so `path` is never missing a part
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.is_dir() and not path.exists():
            os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path


def _refuse_other_name(tmp: Path, path: Path) -> None:
    others = sorted(tmp.parent.glob(f"{glob.escape(tmp.name)}?*"))
    added = f"added {others[0].name.removeprefix(tmp.name)!r} to" if others else "did not write"
    raise ZooError(
        f"cannot write {path}: the writer {added} the temporary name it was given; write to "
        "exactly that path, or to a file object (np.savez(open(tmp, 'wb'), ...) adds no .npz)"
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file (a symlink to one counts), without
    blocking: a FIFO or a device in its place is a ValueError, never waited on. An OSError if
    there is no such file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError("not a regular file")
    return os.fdopen(fd, "rb")


def read_json(path: Path, max_bytes: int) -> Any:
    """The strict JSON (no NaN, no Infinity) of a regular file of at most `max_bytes`
    (`open_regular`). An OSError if there is no such file; a ValueError (or RecursionError,
    for deep nesting) if it is not that."""
    with open_regular(path) as file:
        text = file.read(max_bytes + 1)
    if len(text) > max_bytes:
        raise ValueError(f"more than {max_bytes:,} bytes")
    return json.loads(text, parse_constant=_not_json)


def _not_json(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")
