"""`zoo demo`, `zoo export`, `zoo import` and `zoo predict`: trained weights put to use."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from zoo.cli.app import ImageFiles, JsonLines, RunsDir, WeightsFile, app, registry
from zoo.cli.output import err, out, print_ranked, warn
from zoo.errors import ZooError
from zoo.header import DEFAULT_MAX_PARAMETERS
from zoo.training.config import default_run_name
from zoo.util.paths import expand


@app.command()
def demo(
    weights_dir: Annotated[Path, typer.Option(help="Weights folder.", callback=expand)] = Path(
        "weights"
    ),
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 7860,
    share: Annotated[bool, typer.Option(help="Ask Gradio for a public link.")] = False,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads [the fastest for the first model].")
    ] = None,
    plugins: Annotated[
        str | None,
        typer.Option(
            metavar="NAME,...",
            help="Load only these installed plugins and plugin files (the core and built-ins "
            "always load) [$ZOO_LOAD_PLUGINS, else all].",
        ),
    ] = None,
    max_params: Annotated[
        str,
        typer.Option(
            metavar="N", help="The largest model built, in parameters (200M, 1.5G, 5000000)."
        ),
    ] = f"{DEFAULT_MAX_PARAMETERS // 1_000_000}M",
) -> None:
    """Serve the Gradio demo for the trained weights."""
    budget = parameter_count(max_params, "--max-params")
    from zoo.demo.app import launch

    if threads:
        from zoo.util.threads import fix

        fix(threads)

    launch(registry(plugins), weights_dir, host=host, port=port, share=share, max_parameters=budget)


def parameter_count(text: str, option: str) -> int:
    """A count such as 200M, 1.5G or 5000000 as a whole number; a ZooError otherwise."""
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:].upper(), 1)
    try:
        value = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1:
        raise ZooError(f"{option} must be a count of parameters such as 200M, not {text!r}")
    return int(value)


@app.command("export")
def export_model(
    weights: Annotated[
        str,
        typer.Argument(
            metavar="WEIGHTS", help="A weights file, or a model with --pretrained.", callback=expand
        ),
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="safetensors, onnx, torchscript, pt2, hub, ...")
    ] = "safetensors",
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output file, or folder for hub [default: WEIGHTS, the format's extension; "
            "WEIGHTS-hub/].",
            callback=expand,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Compare the export with PyTorch on real images (hub: on a random batch, read "
            "back by zoo, and by timm for timm models).",
        ),
    ] = False,
    pretrained: Annotated[
        bool, typer.Option("--pretrained", help="Export a model's ImageNet classifier.")
    ] = False,
    license: Annotated[
        str | None,
        typer.Option(
            metavar="ID", help="hub: the Hub license id of the card (apache-2.0, mit, ...) [other]."
        ),
    ] = None,
    runs_dir: RunsDir = "runs",
) -> None:
    """Export weights to safetensors, ONNX, TorchScript, torch.export (pt2) or a Hub folder."""
    from zoo.serving import hub
    from zoo.serving.export import default_path, export
    from zoo.serving.inference import Classifier

    if license is not None and fmt != hub.HUB:
        raise ZooError("--license is for --format hub, whose model card names it")
    reg = registry()
    if pretrained:
        spec = reg.model(weights)
        classifier = Classifier.imagenet(reg, spec.name)
        source = Path("weights") / f"{default_run_name(spec.name, 'imagenet')}.safetensors"
    elif not Path(weights).exists() and reg.provides(weights):
        raise ZooError(f"{weights!r} is a model, not a weights file; add --pretrained for ImageNet")
    else:
        classifier = Classifier.load(reg, weights)
        source = Path(weights)
    if fmt == hub.HUB:
        folder = out_path or hub.default_folder(source)
        card_license = hub.checked_license(license or "other")
        hub.export_folder(reg, classifier, folder, card_license, Path(runs_dir) / source.stem)
        out.print(f"wrote {escape(str(folder))}/ (hub: model.safetensors, config.json, README.md)")
        if check:
            from zoo.serving.hub_load import check_folder

            out.print(escape(check_folder(reg, folder, classifier.model, classifier.input)))
        return
    path = export(reg, classifier, fmt, out_path or default_path(source, fmt))
    out.print(f"wrote {escape(str(path))} ({fmt}, {path.stat().st_size / 1e6:.1f} MB)")
    if not check:
        return
    from zoo.serving.parity import RUNNERS
    from zoo.serving.parity import check as parity

    if fmt not in RUNNERS:
        known = ", ".join(RUNNERS)
        warn(f"no check for format {fmt!r}; --check covers {known}")
        return
    result = parity(reg, classifier, fmt, path)
    out.print(result.summary())
    if not result.ok:
        raise ZooError(f"{path}: the {fmt} export does not match PyTorch")


@app.command("import")
def import_model(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="DIR_OR_FILE",
            help="A Hub folder (zoo's export, or timm's save_for_hf), or its weights file.",
            callback=expand,
        ),
    ],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="The weights file [weights/DIR.safetensors].", callback=expand
        ),
    ] = None,
) -> None:
    """Turn a Hugging Face Hub folder (timm's format) into a zoo weights file."""
    from zoo.serving.hub_load import import_folder

    folder = source if source.is_dir() else source.parent
    target = out_path or Path("weights") / f"{folder.resolve().name}.safetensors"
    path = import_folder(registry(), source, target)
    out.print(f"wrote {escape(str(path))} ({path.stat().st_size / 1e6:.1f} MB)")


@app.command("predict")
def predict_images(
    weights: WeightsFile,
    images: ImageFiles,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Classes per image.")] = 5,
    as_json: JsonLines = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 32,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads [the fastest, measured].")
    ] = None,
    amp: Annotated[bool, typer.Option("--amp", help="bf16 autocast.")] = False,
) -> None:
    """Classify image files and folders: a table, or one JSON object per line."""
    from rich.progress import MofNCompleteColumn, Progress

    from zoo.serving.inference import Classifier
    from zoo.serving.predict import find_images, predict_files
    from zoo.util import threads as torch_threads

    classifier = Classifier.open(registry(), weights)
    files = find_images(images)
    example = torch_threads.example(classifier.input, min(batch_size, len(files)))
    torch_threads.use(threads, classifier.model, example, train=False)
    rows: list[dict[str, str]] = []
    skipped = 0
    columns = (*Progress.get_default_columns(), MofNCompleteColumn())
    quiet = not err.is_terminal
    progress = Progress(*columns, console=err, transient=True, redirect_stdout=False, disable=quiet)
    with progress as bar:
        task = bar.add_task("predicting", total=len(files))
        for path, answer in predict_files(
            classifier, files, k=top_k, batch_size=batch_size, amp=amp
        ):
            bar.advance(task)
            if isinstance(answer, ZooError):
                skipped += 1
                warn(f"skipped {answer}")
                continue
            top = answer.top
            if as_json:
                labels = [{"label": label, "probability": p} for label, p in top.items()]
                line = {"path": str(path), "top": labels, "unknown": answer.unknown}
                print(json.dumps(line), flush=True)
            else:
                ranked = {f"#{rank}": f"{c} {p:.1%}" for rank, (c, p) in enumerate(top.items(), 1)}
                unknown = "yes" if answer.unknown else ""
                rows.append({"image": str(path), "unknown": unknown, **ranked})
    if skipped == len(files):
        raise ZooError(f"none of the {len(files)} images could be read")
    if rows:
        print_ranked(rows)
    if skipped:
        warn(f"skipped {skipped} unreadable of {len(files)} images")
