"""How the Classify and Compare tabs show an answer: the model and file that gave it, the
top classes with one decimal, the calibrated confidence, and "unknown" when the input is unlike
the model's training images."""

from __future__ import annotations

import html
from typing import Any

DIGIT_DATASETS = {"digits", "mnist"}


def top_html(top: dict[str, float]) -> str:
    """The top classes as labelled bars, percentages with one decimal (0.04% is not "0%")."""
    rows = "".join(
        f'<div class="top-row"><span class="top-label">{html.escape(label)}</span>'
        f'<span class="top-bar"><span style="width: {p * 100:.1f}%"></span></span>'
        f'<span class="top-value">{_percent(p)}</span></div>'
        for label, p in top.items()
    )
    return f'<div class="top-classes">{rows}</div>'


def _percent(p: float) -> str:
    return "&lt;0.1%" if 0 < p < 0.0005 else f"{p:.1%}"  # HTML: "<0.1%"


def answer_html(file: str, model: str, top: dict[str, float], unknown: bool) -> str:
    """The answer, naming the model and its weights file, then the top classes."""
    label, p = next(iter(top.items()))
    source = f"{html.escape(model)} <code>{html.escape(file)}</code>"
    if unknown:
        head = (
            f'<p class="answer unknown" data-label="{html.escape(label)}"><b>Unknown</b>: this does not look like the images '
            f"{source} was trained on. Its best guess, not to be trusted: "
            f"{html.escape(label)} ({_percent(p)}).</p>"
        )
    else:
        head = (
            f'<p class="answer" data-label="{html.escape(label)}"><b class="answer-label">{html.escape(label)}</b> '
            f"{_percent(p)} calibrated confidence, from {source}</p>"
        )
    return f'<div class="result">{head}{top_html(top)}</div>'


def example_groups(meta: dict[str, Any] | None) -> set[str]:
    """Which example groups suit a model: "digits" for a digit classifier, "photos" for one
    that takes colour images; both when the model is unknown or fits neither."""
    if not meta:
        return {"digits", "photos"}
    groups = set()
    if meta.get("dataset") in DIGIT_DATASETS:
        groups.add("digits")
    if meta["input"]["channels"] == 3:
        groups.add("photos")
    return groups or {"digits", "photos"}
