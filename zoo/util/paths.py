"""Paths as users write them: `~` and environment variables expanded, everywhere."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

P = TypeVar("P", str, Path, list, None)


def expand(path: P) -> P:
    """`path` with `~` and `$VAR` expanded; a list item by item; the same type back."""
    if path is None:
        return None
    if isinstance(path, list):
        return [expand(item) for item in path]
    text = os.path.expandvars(os.path.expanduser(os.fspath(path)))
    return Path(text) if isinstance(path, Path) else text
