"""What a weights file records, as labelled rows by topic: the model, its data, its results, its
training and how sure it is; why it should not be trusted, if so; and the figures `zoo train`
left in its run folder. The demo's Models tab and the Hub model card both show these rows, so
they say the same thing: only what the file records, nothing computed or guessed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.registry import Registry
from zoo.specs import InputSpec
from zoo.training import runlog
from zoo.training.config import card_rows
from zoo.trust import analysis

Rows = list[tuple[str, str]]
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
SPLITS = (
    ("train_images", "training images"),
    ("held_out_images", "held out (calibration, unknown)"),
    ("test_images", "test images"),
)


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


def run_epochs(run: Path, meta: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The epochs the run folder's metrics.jsonl records, if they are the run that wrote the
    weights file of `meta` (as many epochs as it trained, its best epoch's validation accuracy
    the one the file records); else None."""
    metrics = meta.get("metrics", {})
    try:
        rows = runlog.read_metrics(run)
        best = [row for row in rows if row["epoch"] == metrics.get("best_epoch")]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if len(rows) != metrics.get("epochs_trained") or len(best) != 1:
        return None
    return rows if best[0].get("val_accuracy") == metrics.get("best_val_accuracy") else None


def _caption(path: Path) -> str:
    words = path.stem.replace("-", " ").replace("_", " ")
    return words[:1].upper() + words[1:]


def model_rows(registry: Registry, meta: dict[str, Any], parameters: int) -> Rows:
    """The architecture, its plugin and summary, its size and its input."""
    spec = registry.model(meta["model"])  # a checked file's model is installed
    rows = [("architecture", meta["model"]), ("plugin", meta.get("plugin", "?"))]
    rows += [("what it is", spec.summary), ("parameters", f"{parameters:,}")]
    spec = InputSpec.from_dict(meta["input"])
    colour = "grey" if spec.channels == 1 else "colour"
    inner = spec.image_size
    framed = f", the image {inner} x {inner} in a black frame" if spec.border else ""
    rows.append(("input", f"{spec.size} x {spec.size} pixels, {colour}{framed}"))
    rows.append(("normalisation", f"mean {_floats(spec.mean)}, std {_floats(spec.std)}"))
    return rows


def data_rows(meta: dict[str, Any], limit: int | None = 120) -> Rows:
    """The dataset, its classes (shortened to `limit` characters) and its split sizes."""
    classes = meta["classes"]
    metrics = meta.get("metrics", {})
    names = ", ".join(classes)
    rows = [
        ("dataset", str(meta.get("dataset", "?"))),
        ("classes", f"{len(classes)}: {_short(names, limit) if limit else names}"),
    ]
    for key, label in SPLITS:
        if isinstance(metrics.get(key), int):
            rows.append((label, f"{metrics[key]:,}"))
    return rows


def result_rows(meta: dict[str, Any]) -> Rows:
    """Test accuracy against chance, the hardest classes and every other recorded metric."""
    metrics = dict(meta.get("metrics", {}))
    for key, _ in SPLITS:
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


def trust_rows(meta: dict[str, Any]) -> Rows:
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


def training_rows(settings: dict[str, Any]) -> Rows:
    """Where training started from, and the settings a card shows (`card_rows`)."""
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


def _floats(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
