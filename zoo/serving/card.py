"""The model card (README.md) of a Hub export: the Hub's YAML metadata (`huggingface_hub`'s
`ModelCardData`, with a model-index entry for the recorded test accuracy), then sections filled
only from what the weights file records (`facts.py`, the rows the demo shows) and the epochs of
its run folder: what the model is, its data and split, its results per class, calibration, the
unknown-input detector, the explanation method and its deletion test, the training settings and
time, how to use it with timm (timm architectures) and zoo, and its limitations. A fact the file
does not record is left out, never filled in."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from zoo.serving import facts
from zoo.specs import InputSpec

if TYPE_CHECKING:
    from zoo.registry import Registry
    from zoo.serving.inference import Classifier

# The Hub's ids of the datasets zoo reads by name (`hf:NAME` is its own id); digits and
# folders have none.
HUB_DATASETS = {
    "mnist": "ylecun/mnist",
    "fashion-mnist": "zalando-datasets/fashion_mnist",
    "cifar10": "uoft-cs/cifar10",
    "cifar100": "uoft-cs/cifar100",
}
# Datasets of small grey images, which say nothing about photographs.
GREY_SETS = ("digits", "mnist", "fashion-mnist")


def model_card(
    registry: Registry,
    classifier: Classifier,
    config: dict[str, Any],
    figures: list[tuple[str, str]],
    license: str,
    epochs: list[dict[str, Any]] | None,
) -> str:
    """The card of `classifier`'s Hub folder: `config` its config.json, `figures` the (file
    name, caption) of the images beside it, `epochs` its run's metrics.jsonl (None: unknown)."""
    meta = classifier.meta
    timm = meta["model"].startswith("timm/")
    dataset = str(meta.get("dataset", "")) or None
    title = f"{meta['model']} on {dataset}" if dataset else meta["model"]
    parameters = sum(p.numel() for p in classifier.model.parameters())
    parts = [
        f"---\n{_front_matter(meta, title, license, timm)}---",
        f"# {_text(title)}",
        _intro(registry, meta),
    ]
    weak = facts.weakness(meta)
    if weak:
        parts.append(f"> **Warning:** {_text(weak)}.")
    parts += [
        _section("Model", facts.model_rows(registry, meta, parameters)),
        _section("Data", _data_rows(meta)),
        _section("Results", facts.result_rows(meta)),
        _per_class(meta),
        _section("How sure, and why", facts.trust_rows(meta) + _trust_details(meta)),
        _explanations(meta),
        _section("Training", facts.training_rows(meta.get("settings", {})) + _time(meta, epochs)),
        _figures(figures),
        _usage(meta, config, timm),
        _limitations(meta),
        _license(license),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _front_matter(meta: dict[str, Any], title: str, license: str, timm: bool) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    dataset = str(meta.get("dataset", ""))
    hub_id = HUB_DATASETS.get(dataset) or (dataset[3:] if dataset.startswith("hf:") else None)
    accuracy = meta.get("metrics", {}).get("test_accuracy")
    results = None
    if accuracy is not None and dataset:
        result = EvalResult(
            task_type="image-classification",
            dataset_type=hub_id or dataset,
            dataset_name=dataset,
            dataset_split="test",
            metric_type="accuracy",
            metric_value=accuracy,
        )
        results = [result]
    arch = meta["model"].rpartition("/")[2]
    data = ModelCardData(
        library_name="timm" if timm else "pytorch",
        license=license,
        tags=["image-classification", "zoo", *(["timm"] if timm else []), arch],
        datasets=[hub_id] if hub_id else None,
        metrics=["accuracy"] if accuracy is not None else None,
        pipeline_tag="image-classification",
        model_name=title if results else None,
        eval_results=results,
    )
    return data.to_yaml() + "\n"


def _intro(registry: Registry, meta: dict[str, Any]) -> str:
    spec = registry.model(meta["model"])
    classes = len(meta["classes"])
    data = f" on {_text(str(meta['dataset']))}" if meta.get("dataset") else ""
    return (
        f"{_text(spec.summary)}: an image classifier of {classes} classes, trained{data} with "
        "zoo (the `zoo-models` package). Every figure on this card is one the weights file "
        "recorded when it was trained; none was measured again, and what it did not record is "
        "left out."
    )


def _data_rows(meta: dict[str, Any]) -> facts.Rows:
    rows = facts.data_rows(meta, limit=None)
    source = meta.get("source_size")
    if isinstance(source, int):
        rows.append(("stored resolution", f"{source} x {source} pixels"))
    return rows


def _per_class(meta: dict[str, Any]) -> str:
    """Each class's test precision, recall and F1 where recorded, else its accuracy (recall)."""
    metrics = meta.get("metrics", {})
    scores, accuracy = metrics.get("per_class"), metrics.get("per_class_accuracy")
    if scores:
        lines = ["| class | precision | recall | F1 | test images |", "|---|---|---|---|---|"]
        lines += [
            f"| {_text(name)} | {_percent(row.get('precision'))} | {_percent(row.get('recall'))} "
            f"| {_percent(row.get('f1'))} | {row.get('images', '-')} |"
            for name, row in scores.items()
        ]
    elif accuracy:
        lines = ["| class | test accuracy (recall) |", "| --- | --- |"]
        lines += [f"| {_text(name)} | {_percent(value)} |" for name, value in accuracy.items()]
    else:
        return ""
    return "### Per class\n\n" + "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _trust_details(meta: dict[str, Any]) -> facts.Rows:
    """What the demo's rows leave out: NLL, the images each fit saw, the detector's rate."""
    rows = []
    calibration = meta.get("calibration", {})
    if "nll_before" in calibration and "nll_after" in calibration:
        nll = f"{calibration['nll_before']:.3f} before, {calibration['nll_after']:.3f} after"
        rows.append(("negative log-likelihood", nll))
    if isinstance(calibration.get("held_out_images"), int):
        held = f"{calibration['held_out_images']:,} held-out images"
        rows.append(("temperature fitted on", held))
    detector = meta.get("unknown", {})
    quantile = detector.get("quantile")
    if isinstance(quantile, float):
        held = detector.get("held_out_images")
        on = f" ({held:,} images)" if isinstance(held, int) else ""
        rows.append(("unknown rate on held-out images", f"{1 - quantile:.1%}{on}, by construction"))
    if detector.get("views"):
        rows.append(("unknown views", ", ".join(["features", *detector["views"]])))
    if detector.get("background"):
        rows.append(("training images' background", detector["background"]))
    if detector:
        rows.append(("detector in this folder", "no: it stays in zoo's weights file"))
    return rows


def _explanations(meta: dict[str, Any]) -> str:
    rates = meta.get("explain", {}).get("deletion_pass_rate")
    if not rates:
        return ""
    lines = ["| method | passes the deletion test |", "| --- | --- |"]
    lines += [f"| {_text(method)} | {rate:.0%} |" for method, rate in rates.items()]
    return "### Explanation methods\n\n" + "\n".join(lines)


def _time(meta: dict[str, Any], epochs: list[dict[str, Any]] | None) -> facts.Rows:
    """The run's wall-clock seconds to its last epoch where recorded, else its epochs' steps."""
    seconds = meta.get("timing", {}).get("epochs_done")
    count = meta.get("metrics", {}).get("epochs_trained")
    over = f" over {count} epochs" if isinstance(count, int) else ""
    if isinstance(seconds, (int, float)):
        wall = "wall clock, from the run's start to its last epoch"
        return [("training time", f"{seconds:.1f} s{over} ({wall})")]
    if not epochs:
        return []
    seconds = sum(row.get("seconds") or 0.0 for row in epochs)
    return [("training time", f"{seconds:.1f} s over {len(epochs)} epochs (training steps)")]


def _figures(figures: list[tuple[str, str]]) -> str:
    if not figures:
        return ""
    shown = [f"![{_text(caption)}]({name})\n\n*{_text(caption)}*" for name, caption in figures]
    return "## Figures\n\n" + "\n\n".join(shown)


def _usage(meta: dict[str, Any], config: dict[str, Any], timm: bool) -> str:
    grey = meta["input"]["channels"] == 1
    mode = "L" if grey else "RGB"
    parts = ["## How to use it"]
    if timm:
        parts.append(
            "With timm, from this folder (or `hf-hub:USER/REPO` once pushed):\n\n"
            "```python\nimport timm\nimport torch\nfrom PIL import Image\n\n"
            'model = timm.create_model("local-dir:.", pretrained=True).eval()\n'
            "config = timm.data.resolve_data_config(model=model)\n"
            "transform = timm.data.create_transform(**config)\n"
            f'image = transform(Image.open("image.png").convert("{mode}"))[None]\n'
            "with torch.no_grad():\n"
            "    probabilities = model(image).softmax(1)\n"
            'print(model.pretrained_cfg["label_names"][probabilities.argmax()])\n```'
        )
    else:
        parts.append(
            f"`{_text(config['architecture'])}` is a zoo architecture: load the folder with "
            "zoo. In plain PyTorch, `model.safetensors` is the model's state dict, which "
            '`model.load_state_dict(safetensors.torch.load_file("model.safetensors"))` takes '
            "strictly into the architecture zoo builds."
        )
    parts.append(
        "With zoo, back into a self-describing weights file (the facts under config.json's "
        "`zoo` key come with it):\n\n"
        "```bash\nzoo import . --out weights/model.safetensors\n"
        "zoo predict weights/model.safetensors image.png\n```"
    )
    return "\n\n".join(parts)


def _limitations(meta: dict[str, Any]) -> str:
    spec = InputSpec.from_dict(meta["input"])
    size, inner, border = spec.size, spec.image_size, spec.border
    dataset = str(meta.get("dataset", ""))
    source = meta.get("source_size")
    seen = f"{source} x {source} pixel" if isinstance(source, int) else f"{size} x {size} pixel"
    upscaled = f", upscaled to {inner} px" if isinstance(source, int) and source < inner else ""
    framed = f" in a black frame of {border} px" if border else ""
    colour = "grey" if spec.channels == 1 else "colour"
    origin = f" on {_text(dataset)}:" if dataset else " on"
    notes = [
        f"It was trained{origin} {seen} {colour} images{upscaled}; it takes {size} x {size} "
        f"input, the centre square of an image resized to {inner} px{framed}.",
        f"It knows only its {len(meta['classes'])} classes: any other image still gets one of "
        "them. zoo's weights file flags such inputs as unknown; this folder does not carry "
        "the detector.",
    ]
    if spec.channels == 1:
        photographs = " Do not use it on photographs." if dataset in GREY_SETS else ""
        notes.append(f"It sees grey images only; colour is discarded.{photographs}")
    weak = facts.weakness(meta)
    if weak:
        notes.append(f"It is weak: {_text(weak)}.")
    return "## Limitations\n\n" + "\n".join(f"- {note}" for note in notes)


def _license(license: str) -> str:
    if license == "other":
        return (
            "## License\n\nNo license was named when this folder was exported "
            "(`zoo export --license ID` names one); ask its author before reusing it."
        )
    return f"## License\n\n{license}"


def _section(title: str, rows: facts.Rows) -> str:
    if not rows:
        return ""
    lines = ["| | |", "| --- | --- |"] + [f"| {_text(k)} | {_text(v)} |" for k, v in rows]
    return f"## {title}\n\n" + "\n".join(lines)


def _text(value: str) -> str:
    """`value` safe in a Markdown table cell: no HTML, no cell break, no new line."""
    escaped = html.escape(value, quote=False).replace("|", "\\|")
    return " ".join(escaped.split())
