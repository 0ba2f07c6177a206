"""Saving matplotlib figures (drawn on the Agg canvas: no pyplot, no display)."""

from __future__ import annotations

from pathlib import Path

from zoo.util.files import atomic_write


def save_png(figure, path: Path) -> Path:
    """Write a matplotlib figure as a PNG, atomically."""
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
