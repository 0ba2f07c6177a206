"""The Models tab: a card per weights file, read from its self-describing header, with the
training curves `zoo train` leaves in runs/<run>/ where they exist."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import runlog, weights
from zoo.errors import ZooError
from zoo.introspect import parameter_count
from zoo.registry import Registry


@dataclass
class Card:
    """What the Models tab shows of one weights file."""

    title: str
    markdown: str
    curves: Path | None = None


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


def curves(run: Path) -> Path | None:
    """The training-curves PNG that `zoo train` wrote into the run folder, if there is one."""
    path = run / runlog.CURVES
    return path if path.is_file() else None


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
    """`key value, ...`, accuracies as percentages, nested dicts (per class) inline."""

    def show(key: str, value: Any) -> str:
        if isinstance(value, dict):
            return "(" + ", ".join(f"{k} {show(key, v)}" for k, v in value.items()) + ")"
        if isinstance(value, float):
            return f"{value:.2%}" if "accuracy" in key else f"{value:.4g}"
        return str(value)

    return ", ".join(f"{k} {show(k, v)}" for k, v in values.items()) or "none recorded"


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
