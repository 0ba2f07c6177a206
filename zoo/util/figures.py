"""Saving matplotlib figures (drawn on the Agg canvas: no pyplot, no display)."""

from __future__ import annotations

from pathlib import Path

from zoo.util.files import atomic_write

DPI = 100  # pixels an inch, on screen and in the files
# Fixed margins for two side-by-side panels with a title above: half the time of matplotlib's
# constrained layout, whose solver measures every label first.
TWO_PANELS = {"left": 0.08, "right": 0.985, "bottom": 0.13, "top": 0.84, "wspace": 0.22}


def save_png(figure, path: Path) -> Path:
    """Write a matplotlib figure as a PNG, atomically."""
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))
