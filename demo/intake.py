"""What a Classify request may open: only regular files that this server received as uploads
(gradio's upload folder) or wrote itself (the examples), decoded within the pixel cap. Anything
else (a path the client made up, a symlink, a FIFO, a device, a value that is not a file) is
refused with one line naming only what the user sent, before anything is opened."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from zoo.data.preprocess import open_image
from zoo.errors import ZooError

NO_IMAGE = "no image: upload, paste or take a picture first"
SHOWN_CHARS = 60  # a name the user sent is shown up to this long


def shown(text: str) -> str:
    """A name the user sent, fit for a one-line message: printable, at most `SHOWN_CHARS`."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def kind(value: Any) -> str:
    """What a wrong-typed value is, in words ("a number", "a list")."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object without a file path"
    return "text" if isinstance(value, str) else type(value).__name__


class Uploads:
    """Opens the files that requests name, if they lie in `folders` (resolved once)."""

    def __init__(self, folders: Sequence[str | Path]) -> None:
        self.folders = [Path(os.path.realpath(folder)) for folder in folders]

    def open(self, given: Any) -> Image.Image:
        """The image of an upload (gradio's file data, or its path), decoded; a ZooError naming
        the file as the user did if it is not one of ours, not regular or not an image."""
        path, name = _path_and_name(given)
        real = Path(os.path.realpath(path))
        if not any(real.is_relative_to(folder) for folder in self.folders):
            raise ZooError(f"{name}: not a file uploaded to this server (upload it first)")
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):  # a symlink, FIFO, device, folder
                raise ZooError(f"{name}: not a regular file")
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            raise ZooError(f"{name}: no such uploaded file") from None
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since lstat
                raise ZooError(f"{name}: not a regular file")
            return open_image(file, name=name)


def _path_and_name(given: Any) -> tuple[str, str]:
    """The path of gradio's file data (or of a bare path), and the name to show for it."""
    if given is None or given == "" or (isinstance(given, dict) and given.get("path") is None):
        raise ZooError(NO_IMAGE)
    if isinstance(given, str):
        path, name = given, None
    elif isinstance(given, dict) and isinstance(given["path"], str):
        path, name = given["path"], given.get("orig_name")
    else:
        raise ZooError(f"the image must be an uploaded file, not {kind(given)}")
    if "\0" in path:
        raise ZooError("the image's path is not a valid path")
    return path, shown(name if isinstance(name, str) and name else Path(path).name)
