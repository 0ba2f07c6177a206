"""The Models tab: a card per weights file, read from its self-describing header, with the
training curves `zoo train` leaves in runs/<run>/ where they exist."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from zoo import weights
from zoo.errors import ZooError
from zoo.introspect import parameter_count
from zoo.registry import Registry


@dataclass
class Card:
    """What the Models tab shows of one weights file."""

    title: str
    markdown: str
    curves: Path | Image.Image | None = None


def card(registry: Registry, path: Path, runs_dir: Path) -> Card:
    """The card of the weights file `path`; an unusable file gets a card that says why."""
    try:
        meta = weights.read_meta(path)
    except ZooError as error:
        return Card(path.name, f"**Unusable**: {error}")
    lines = [
        f"**Model** `{meta['model']}` (plugin `{meta.get('plugin', '?')}`): "
        f"{_architecture(registry, meta)}",
        f"**Dataset** {meta.get('dataset', '?')}: {len(meta['classes'])} classes "
        f"({_short(', '.join(meta['classes']))})",
        f"**Input** {_input(meta['input'])}",
        f"**Metrics** {_pairs(meta.get('metrics', {}))}",
        f"**Training** {_pairs(meta.get('settings', {}))}",
        f"**Created** {meta.get('created', '?')} by zoo {meta.get('zoo_version', '?')}",
    ]
    return Card(path.name, "\n\n".join(lines), curves(runs_dir / path.stem))


def curves(run: Path) -> Path | Image.Image | None:
    """The training-curves image of a run folder: its PNG, else a plot of its metrics.jsonl."""
    pictures = sorted(run.glob("*.png"))
    if pictures:
        return pictures[0]
    log = run / "metrics.jsonl"
    return _plot(log) if log.is_file() else None


def _plot(log: Path) -> Image.Image | None:
    """An image plotting each numeric series of its JSON lines against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = []
    for line in log.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    series = sorted(
        {k for row in rows for k, v in row.items() if isinstance(v, int | float) and k != "epoch"}
    )
    if not series:
        return None
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axes = figure.subplots()
    for key in series:
        points = [(row.get("epoch", i + 1), row[key]) for i, row in enumerate(rows) if key in row]
        axes.plot(*zip(*points, strict=True), marker=".", label=key)
    axes.set_xlabel("epoch")
    axes.legend()
    axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return Image.open(buffer)


def _architecture(registry: Registry, meta: dict[str, Any]) -> str:
    if meta["model"] not in registry.models:
        return "its plugin is not installed"
    spec = registry.model(meta["model"])
    model = registry.build(spec, num_classes=len(meta["classes"]))
    return f"{spec.summary}; {parameter_count(model):,} parameters"


def _input(spec: dict[str, Any]) -> str:
    size = f"{spec['channels']}x{spec['size']}x{spec['size']}"
    return f"{size}, mean {spec['mean']}, std {spec['std']}"


def _pairs(values: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k} {show(v)}" for k, v in values.items()) or "none recorded"


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
