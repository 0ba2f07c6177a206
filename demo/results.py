"""How the Classify and Compare tabs show an answer: the model and file that gave it, the
top classes with one decimal, the calibrated confidence, and "unknown" when the input is unlike
the model's training images."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from PIL import Image

DRAWN = {"digits": "a digit", "mnist": "a digit", "fashion-mnist": "a garment"}  # by dataset
MAX_NAMED = 12  # classes named in the Draw tab's label


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
    data = f'data-label="{html.escape(label)}"'
    source = f"{html.escape(model)} <code>{html.escape(file)}</code>"
    if unknown:
        head = (
            f'<p class="answer unknown" {data}><b>Unknown</b>: this does not look like the images '
            f"{source} was trained on. Its best guess, not to be trusted: "
            f"{html.escape(label)} ({_percent(p)}).</p>"
        )
    else:
        head = (
            f'<p class="answer" {data}><b class="answer-label">{html.escape(label)}</b> '
            f"{_percent(p)} calibrated confidence, from {source}</p>"
        )
    return f'<div class="result">{head}{top_html(top)}</div>'


def takes_photos(meta: dict[str, Any] | None) -> bool:
    """Whether the sample photographs suit a model: one that takes colour images (or one
    whose file cannot be read)."""
    return not meta or meta["input"]["channels"] == 3


def drawing_label(meta: dict[str, Any] | None) -> str | None:
    """What the Draw tab asks the user to draw for a model, or None where a drawing makes no
    sense: a colour model, or one trained on dark images on a light background (a drawing
    reaches the model as light ink on black)."""
    if not meta or meta["input"]["channels"] != 1:
        return None
    if (meta.get("unknown") or {}).get("background") == "light":
        return None
    classes = meta["classes"]
    what = DRAWN.get(meta.get("dataset", ""), "one of its classes")
    named = ", ".join(classes) if len(classes) <= MAX_NAMED else f"{len(classes)} classes"
    return f"Draw {what} ({named}): it is classified as you draw"


def compare_html(rows: list[list], looked: dict[str, Image.Image]) -> str:
    """The Compare tab's table: a row per weights file (file and model, answer, confidence,
    unknown, latency) with its heat map inline; on a phone each row becomes a card."""
    body = []
    for name, model, label, confidence, unknown, latency in rows:
        file = f"<code>{html.escape(name)}</code>"
        if confidence is None:  # an unusable file: its reason in the answer column
            body.append(f'<tr><td>{file}</td><td colspan="5">{html.escape(label)}</td></tr>')
            continue
        picture = looked.get(name)
        heat = (
            f'<img src="{_data_url(picture)}" alt="where {html.escape(name)} looked">'
            if (picture is not None)
            else ""
        )
        flag = '<span class="unknown-flag">unknown</span>' if unknown else "no"
        body.append(
            f"<tr><td>{file}<br>{html.escape(model)}</td>"
            f'<td data-h="answer"><b>{html.escape(label)}</b></td>'
            f'<td data-h="confidence">{confidence:.1f}%</td><td data-h="unknown">{flag}</td>'
            f'<td data-h="latency">{latency:.1f} ms</td><td>{heat}</td></tr>'
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("weights file", "answer", "confidence", "unknown", "latency", "where it looked")
    )
    return f'<table class="compare"><thead><tr>{head}</tr></thead>{"".join(body)}</table>'


def _data_url(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
