"""The Models tab: a card per weights file, read from its self-describing header, as tables
grouped by topic, with a warning on weak models and the figures `zoo train` left in
runs/<run>/ (curves, confusion matrix, and any other PNG such as a reliability diagram)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.demo.shelf import WeightsShelf
from zoo.registry import Registry
from zoo.training import runlog
from zoo.training.config import card_rows
from zoo.trust import analysis

# A model is weak when its accuracy is under this multiple of chance (1 / classes) ...
NEAR_CHANCE = 2.0
# ... or when it saw fewer training images than this per class.
FEW_IMAGES_PER_CLASS = 10
# The run's figures, in this order, with their captions; other PNGs follow by name.
FIGURES = {
    runlog.CURVES: "Training curves",
    runlog.CONFUSION: "Confusion matrix (test split)",
    analysis.RELIABILITY: "Reliability diagram (test split)",
    analysis.TOP_LOSSES: "Top losses: the test images it got most wrong",
}


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
        _table("Model", _model_rows(registry, meta, checked.parameters)),
        _table("Data", _data_rows(meta)),
        _table("Results", _result_rows(meta)),
        _table("Training", _training_rows(meta.get("settings", {}))),
    ]
    trust = _trust_rows(meta)
    if trust:
        tables.append(_table("How sure, and why", trust))
    body = '<div class="card-tables">' + "".join(tables) + "</div>"
    return Card(path.name, body, weakness(meta), figures(runs_dir / path.stem))


def weakness(meta: dict[str, Any]) -> str | None:
    """Why a model should not be trusted (accuracy near chance, a handful of training
    images), or None."""
    classes = len(meta["classes"])
    metrics = meta.get("metrics", {})
    reasons = []
    accuracy = metrics.get("test_accuracy")
    if isinstance(accuracy, float) and accuracy < NEAR_CHANCE / classes:
        reasons.append(
            f"test accuracy {accuracy:.1%} is near chance ({1 / classes:.1%} for {classes} classes)"
        )
    seen = metrics.get("train_images")
    if isinstance(seen, int) and seen < FEW_IMAGES_PER_CLASS * classes:
        reasons.append(f"trained on only {seen:,} images ({seen / classes:.3g} a class)")
    return "; ".join(reasons) or None


def figures(run: Path) -> list[tuple[Path, str]]:
    """The PNGs `zoo train` wrote into the run folder, with captions: the known ones first."""
    if not run.is_dir():
        return []
    found = {path.name: path for path in sorted(run.glob("*.png")) if path.is_file()}
    known = [(found.pop(name), caption) for name, caption in FIGURES.items() if name in found]
    return known + [(path, _caption(path)) for path in found.values()]


def _caption(path: Path) -> str:
    words = path.stem.replace("-", " ").replace("_", " ")
    return words[:1].upper() + words[1:]


def _model_rows(registry: Registry, meta: dict[str, Any], parameters: int) -> list[tuple[str, str]]:
    spec = registry.model(meta["model"])  # a checked file's model is installed
    rows = [("architecture", meta["model"]), ("plugin", meta.get("plugin", "?"))]
    rows += [("what it is", spec.summary), ("parameters", f"{parameters:,}")]
    spec = meta["input"]
    colour = "grey" if spec["channels"] == 1 else "colour"
    rows.append(("input", f"{spec['size']} x {spec['size']} pixels, {colour}"))
    rows.append(("normalisation", f"mean {_floats(spec['mean'])}, std {_floats(spec['std'])}"))
    return rows


def _data_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    classes = meta["classes"]
    metrics = meta.get("metrics", {})
    rows = [
        ("dataset", str(meta.get("dataset", "?"))),
        ("classes", f"{len(classes)}: {_short(', '.join(classes))}"),
    ]
    for key, label in (
        ("train_images", "training images"),
        ("held_out_images", "held out (calibration, unknown)"),
        ("test_images", "test images"),
    ):
        if isinstance(metrics.get(key), int):
            rows.append((label, f"{metrics[key]:,}"))
    return rows


def _result_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    metrics = dict(meta.get("metrics", {}))
    for key in ("train_images", "held_out_images", "test_images"):
        metrics.pop(key, None)
    rows = []
    accuracy = metrics.pop("test_accuracy", None)
    if isinstance(accuracy, float):
        chance = 1 / len(meta["classes"])
        rows.append(("test accuracy", f"{accuracy:.2%} (chance: {chance:.1%})"))
    per_class = metrics.pop("per_class_accuracy", None)
    if isinstance(per_class, dict) and per_class:
        worst = sorted(per_class.items(), key=lambda item: item[1])[:3]
        rows.append(("hardest classes", ", ".join(f"{k} {v:.1%}" for k, v in worst)))
    rows += [(key.replace("_", " "), _value(key, value)) for key, value in metrics.items()]
    if meta.get("created"):
        rows.append(("created", f"{meta['created']} by zoo {meta.get('zoo_version', '?')}"))
    return rows


def _trust_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """Calibration, the unknown-input detector and the explanation method, where recorded."""
    rows = []
    calibration = meta.get("calibration", {})
    if "temperature" in calibration:
        rows.append(("temperature", f"{calibration['temperature']:.3g}"))
    if "ece_before" in calibration and "ece_after" in calibration:
        ece = f"{calibration['ece_before']:.3f} before, {calibration['ece_after']:.3f} after"
        rows.append(("calibration error (ECE)", ece))
    unknown = meta.get("unknown", {})
    if "method" in unknown:
        where = f" on the input of {unknown['layer']}" if "layer" in unknown else ""
        quantile = unknown.get("quantile")
        beyond = f", beyond the {quantile:.0%} of held-out images" if quantile else ""
        rows.append(("unknown when", f"{unknown['method']} distance{where}{beyond}"))
    explained = meta.get("explain", {})
    if "method" in explained:
        rates = explained.get("deletion_pass_rate", {})
        passed = (
            f" (passes the deletion test on {rates[explained['method']]:.0%})"
            if (explained["method"] in rates)
            else ""
        )
        rows.append(("where it looked", f"{explained['method']}{passed}"))
    return rows


def _training_rows(settings: dict[str, Any]) -> list[tuple[str, str]]:
    if settings.get("init_from"):
        start = f"the file {settings['init_from']}"
    elif settings.get("pretrained"):
        start = "pretrained weights"
    else:
        start = "random initialisation"
    rows = [("started from", start)] if settings else []
    return rows + [(label, _value(label, value)) for label, value in card_rows(settings)]


def _value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2%}" if "accuracy" in key else f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(key, v)}" for k, v in value.items())
    return str(value)


def _floats(values: list[float]) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    """One topic as a two-column HTML table, its values escaped."""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="card-table"><caption>{title}</caption>{body}</table>'


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
