"""The Models tab: a card per weights file, read from its self-describing header, as tables
grouped by topic (`zoo.serving.facts`, the rows the Hub card shows too), with a warning on weak
models and the figures `zoo train` left in runs/<run>/ (curves, confusion matrix, and any other
PNG such as a reliability diagram)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from zoo.demo.shelf import WeightsShelf
from zoo.registry import Registry
from zoo.serving.facts import (
    Rows,
    data_rows,
    figures,
    model_rows,
    result_rows,
    training_rows,
    trust_rows,
    weakness,
)


@dataclass
class Card:
    """What the Models tab shows of one weights file."""

    title: str
    html: str
    warning: str | None = None
    figures: list[tuple[Path, str]] = field(default_factory=list)


def card(registry: Registry, shelf: WeightsShelf, path: Path, runs_dir: Path) -> Card:
    """The card of the weights file `path` on `shelf`; an unusable file gets a card that says
    why."""
    checked = shelf.checked(path.name)
    if checked is None:
        return Card(path.name, _table("Unusable", [("why", shelf.problem(path.name) or "?")]))
    meta = checked.meta
    tables = [
        _table("Model", model_rows(registry, meta, checked.parameters)),
        _table("Data", data_rows(meta)),
        _table("Results", result_rows(meta)),
        _table("Training", training_rows(meta.get("settings", {}))),
    ]
    trust = trust_rows(meta)
    if trust:
        tables.append(_table("How sure, and why", trust))
    body = '<div class="card-tables">' + "".join(tables) + "</div>"
    return Card(path.name, body, weakness(meta), figures(runs_dir / path.stem))


def _table(title: str, rows: Rows) -> str:
    """One topic as a two-column HTML table, its values escaped."""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="card-table"><caption>{title}</caption>{body}</table>'
