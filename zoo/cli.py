"""The `zoo` command line. Heavy imports (torch, gradio) happen inside the commands that need
them, so `zoo --help` starts fast."""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from zoo.errors import ZooError
from zoo.paths import expand

try:  # typer >= 0.24 ships its own copy of click, whose exceptions its parser raises
    from typer._click import exceptions as click
except ImportError:
    from click import exceptions as click

app = typer.Typer(
    help="A plugin-based PyTorch image-classification model zoo with a Gradio demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_plugin_dirs: list[Path] = []


def registry():
    from zoo.registry import get_registry

    return get_registry(_plugin_dirs)


@app.callback()
def _options(
    plugins_dir: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="DIR",
            help="A folder of .py plugin files (repeatable; also $ZOO_PLUGINS_PATH).",
            callback=expand,
        ),
    ] = None,
) -> None:
    _plugin_dirs[:] = plugins_dir or []


@app.command("list")
def list_models(
    pattern: Annotated[str | None, typer.Argument(help="A glob such as 'timm/*'.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the models (a curated set, or all that match PATTERN)."""
    reg = registry()
    specs = reg.find(pattern)
    if as_json:
        print(json.dumps([spec.to_dict() for spec in specs], indent=2))
        return
    if not specs:
        raise ZooError(f"no model matches {pattern!r}{reg.did_you_mean(pattern)}")
    rows = [
        {
            "model": spec.name,
            "input": f"{spec.input.channels}x{spec.input.size}x{spec.input.size}",
            "pretrained": "yes" if spec.pretrained else "",
            "plugin": spec.plugin,
            "summary": spec.summary,
        }
        for spec in specs
    ]
    _print_table(rows, wrap="summary", drop=("plugin", "pretrained"))
    if pattern is None:
        hidden = len(registry().models) - len(specs)
        if hidden:
            out.print(f"and {hidden} more: zoo list 'timm/*' lists them all")


@app.command()
def info(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    classes: Annotated[int, typer.Option(min=1, help="Size of the classifier head.")] = 10,
    graph: Annotated[bool, typer.Option(help="Print the autograd graph.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a model: module tree, parameter tensors, input spec, head, plugin."""
    reg = registry()
    spec = reg.model(name)  # before torch is imported: a wrong name fails at once
    from zoo.introspect import autograd_graph, forward_loss, parameter_count, parameter_shapes

    model = reg.build(spec, num_classes=classes)
    shapes = parameter_shapes(model)
    facts = {
        **spec.to_dict(),
        "module_tree": str(model),
        "parameters": [{"name": n, "shape": list(s)} for n, s in shapes],
        "parameter_count": parameter_count(model),
    }
    if graph:
        facts["autograd_graph"] = autograd_graph(forward_loss(model, spec.input))
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    i = spec.input
    out.print(f"[bold]{spec.name}[/]: {spec.summary}")
    out.print(f"plugin {spec.plugin}; head {spec.head}; pretrained weights: {spec.pretrained}")
    out.print(f"input {i.channels}x{i.size}x{i.size}, mean {i.mean}, std {i.std}")
    out.print("\nmodule tree:")
    print(model)
    out.print(f"\n{len(shapes)} parameter tensors:")
    for param, shape in shapes:
        print(f"  {param:<40} {list(shape)}")
    out.print(f"total parameters: {facts['parameter_count']:,}")
    if graph:
        out.print("\nautograd graph of MSELoss(model(randn), randn):")
        print("\n".join(facts["autograd_graph"]))


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the plugins, what each provides, and the errors of those that failed."""
    infos = registry().plugins
    if as_json:
        print(json.dumps([vars(p) for p in infos], indent=2))
        return
    for p in infos:
        provides = [f"{len(p.models)} models" if len(p.models) > 3 else ", ".join(p.models)]
        provides += [f"datasets {', '.join(p.datasets)}"] if p.datasets else []
        out.print(
            f"[bold]{escape(p.name)}[/] ({p.source}) {escape('; '.join(filter(None, provides)))}"
        )
        if p.error:
            out.print(f"  [red]error:[/] {escape(p.error)}")


def run_name(model: str, dataset: str) -> str:
    """The default run name, `<model>-<dataset>`, safe as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{model}-{dataset}").strip("-")


# `zoo train` options whose setting (and TOML key) has another name.
_SETTING_OF = {"compile_": "compile", "out_dir": "out", "name_of_run": "run_name"}
_PATH_SETTINGS = {"data_dir", "init_from", "out", "runs_dir"}


@app.command()
def train(
    name: Annotated[str, typer.Argument(help="The model's name (zoo list).")],
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="A name from zoo datasets.")
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="Where datasets live (default $ZOO_DATA, ~/.cache/zoo/data).")
    ] = None,
    download: Annotated[bool | None, typer.Option("--download", help="Fetch the data.")] = None,
    limit: Annotated[int | None, typer.Option(help="Train on N images (stratified).")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option(help="Per process under torchrun.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd, adam or adamw.")] = None,
    schedule: Annotated[str | None, typer.Option(help="onecycle, cosine or none.")] = None,
    weight_decay: Annotated[float | None, typer.Option()] = None,
    label_smoothing: Annotated[float | None, typer.Option()] = None,
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment",
            help="Random crops (resized ones for folder and hf photos), and flips where the "
            "dataset allows (not digits).",
        ),
    ] = None,
    trivial_augment: Annotated[
        bool | None,
        typer.Option("--trivial-augment", help="With --augment on photos: TrivialAugmentWide."),
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Input size, not the model's.")] = None,
    strategy: Annotated[str | None, typer.Option(help="full or head.")] = None,
    pretrained: Annotated[
        bool | None, typer.Option("--pretrained/--no-pretrained", help="Start from ImageNet.")
    ] = None,
    init_from: Annotated[
        str | None, typer.Option(metavar="FILE", help="Start from a .safetensors or .pth file.")
    ] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or mps.")] = None,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="bf16 autocast.")] = None,
    compile_: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Decoding processes (folders).")] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads [the fastest, measured].")
    ] = None,
    out_dir: Annotated[str | None, typer.Option("--out", help="Weights folder [weights].")] = None,
    name_of_run: Annotated[str | None, typer.Option("--run-name")] = None,
    runs_dir: Annotated[
        str | None, typer.Option(envvar="ZOO_RUNS_DIR", help="Run folders' parent [runs].")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from last.ckpt.")] = False,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config", metavar="FILE.toml", help="Settings from a file.", callback=expand
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Fine-tune a model; write weights/<model>-<dataset>.safetensors and runs/<run>/."""
    options = dict(locals())  # first: the options as given, None where not
    reg = registry()
    spec = reg.model(name)  # before torch is imported: a wrong name fails at once
    from dataclasses import fields

    from zoo.settings import read_settings
    from zoo.train import TrainConfig
    from zoo.train import train as run_training

    types = {f.name: str(f.type) for f in fields(TrainConfig)}
    types.update(out="str", run_name="str", runs_dir="str")
    settings = read_settings(config_file, types) if config_file else {}
    for option, value in options.items():
        key = _SETTING_OF.get(option, option)
        if key in types and value is not None:
            settings[key] = value
    for key in _PATH_SETTINGS.intersection(settings):
        settings[key] = expand(settings[key])
    out_folder = Path(settings.pop("out", "weights"))
    if out_folder.suffix == ".safetensors":
        raise ZooError(
            f"--out is the weights folder, not a file: the file is named after the run "
            f"(--out {out_folder.parent} --run-name {out_folder.stem})"
        )
    runs = Path(settings.pop("runs_dir", "runs"))
    config = TrainConfig.for_model(spec, **settings)
    run = settings.get("run_name") or run_name(spec.name, config.dataset)
    try:
        result = run_training(
            reg,
            spec,
            config,
            out_folder / f"{run}.safetensors",
            run_dir=runs / run,
            resume=resume,
            progress=not quiet,
            given=settings,
        )
    except KeyboardInterrupt as interrupt:  # typer would swallow it silently
        err.print(f"interrupted: {escape(str(interrupt))}" if str(interrupt) else "interrupted")
        raise typer.Exit(130) from None
    if result.path is not None:
        out.print(
            f"{spec.name} on {config.dataset}: test accuracy {result.accuracy:.2%} "
            f"in {result.seconds:.1f}s -> {result.path} (run folder {result.run_dir})"
        )


datasets_app = typer.Typer(no_args_is_help=False, rich_markup_mode=None)
app.add_typer(datasets_app, name="datasets")
DataDir = Annotated[
    str | None,
    typer.Option(
        help="Where datasets live (default $ZOO_DATA, ~/.cache/zoo/data).", callback=expand
    ),
]


@datasets_app.callback(invoke_without_command=True)
def list_datasets(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """List the datasets zoo train and zoo eval take, and the prepared ones in the cache."""
    if ctx.invoked_subcommand:
        return
    from zoo.datasets import cache

    specs = registry().datasets.values()
    rows = [
        {
            "name": f"{s.name}:PATH" if s.takes_path else s.name,
            "summary": s.summary,
            "flip": s.flip,
            "plugin": s.plugin,
        }
        for s in specs
    ]
    root = cache.cache_dir(cache.data_dir(data_dir))
    cached = cache.listing(root)
    if as_json:
        print(json.dumps({"datasets": rows, "cache": cached}, indent=2))
        return
    table = [
        {
            "dataset": row["name"],
            "augment flips": "yes" if row["flip"] else "no",
            "plugin": row["plugin"],
            "summary": row["summary"],
        }
        for row in rows
    ]
    _print_table(table, wrap="summary", drop=("plugin",))
    out.print(f"\nprepared in {escape(str(root))}:" if cached else f"\nnothing prepared in {root}")
    if cached:
        table = Table("dataset", "images", "size", "on disk", "created", box=None)
        for entry in cached:
            table.add_row(
                escape(entry.get("dataset", "?")),
                str(entry.get("rows", "?")),
                f"{entry.get('size', '?')} px",
                f"{entry['bytes'] / 1e6:,.1f} MB",
                entry.get("created", ""),
            )
        out.print(table)


@datasets_app.command("prepare")
def prepare_dataset(
    name: Annotated[str, typer.Argument(help="folder:PATH or hf:NAME.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Prepare for this model's input size.")
    ] = None,
    image_size: Annotated[int | None, typer.Option(min=1, help="Or this input size.")] = None,
    augment: Annotated[
        bool, typer.Option("--augment", help="Store larger, for zoo train --augment.")
    ] = False,
    workers: Annotated[int | None, typer.Option(min=0, help="Decoding processes.")] = None,
    data_dir: DataDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Decode a folder or Hugging Face dataset into the cache, ahead of zoo train and eval."""
    from zoo.datasets import load_dataset

    reg = registry()
    spec, _ = reg.dataset(name)
    if not spec.takes_path:
        raise ZooError(f"{name} needs no preparing: it is read whole into memory")
    if (model is None) == (image_size is None):
        raise ZooError("give --model NAME or --image-size N (the size to prepare for)")
    size = image_size or reg.model(model).input.size
    _, data = load_dataset(
        reg, name, size, data_dir, workers=workers, augment=augment, progress=not quiet
    )
    images = len(data.train_labels) + len(data.test_labels)
    out.print(f"{escape(name)}: {images} images ready at {data.train_images.shape[-1]} px")


@app.command("eval")
def evaluate(
    weights: Annotated[
        Path, typer.Argument(help="A .safetensors file from zoo train.", callback=expand)
    ],
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Default: the one it was trained on.")
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="Where datasets live.", callback=expand)
    ] = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch the data.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    figures: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help="Where the figures go [default: RUNS_DIR/<weights name>]."
        ),
    ] = None,
    runs_dir: Annotated[
        str,
        typer.Option(envvar="ZOO_RUNS_DIR", help="Run folders' parent [runs].", callback=expand),
    ] = "runs",
    deletion: Annotated[
        bool, typer.Option("--deletion", help="Deletion-test the explanations (pass rate).")
    ] = False,
    method: Annotated[
        str | None, typer.Option(help="Explanation method for --deletion [the file's].")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Accuracy, calibration, per-class scores, confusions and the top losses of a weights
    file; writes a reliability diagram and a top-loss gallery."""
    from dataclasses import asdict

    from zoo.evaluate import evaluate_weights

    if method is not None and not deletion:
        raise ZooError("--method is for --deletion (zoo explain takes it too)")
    report = evaluate_weights(
        registry(),
        weights,
        dataset,
        data_dir,
        download,
        device,
        batch_size,
        figures_dir=figures or Path(runs_dir) / weights.stem,
        deletion=deletion,
        method=method,
    )
    if as_json:
        print(json.dumps(asdict(report), indent=2))
        return
    out.print(
        f"{escape(report.weights)} on {escape(report.dataset)} ({report.images} test images): "
        f"accuracy [bold]{report.accuracy:.2%}[/]"
    )
    c = report.calibration
    out.print(
        f"calibration: temperature {c['temperature']:.3f}, ECE {c['ece_before']:.4f} -> "
        f"{c['ece_after']:.4f}, NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}"
    )
    if report.explain:
        e = report.explain
        out.print(
            f"explanations ({e['method']}): {e['pass_rate']:.1%} of {e['images']} test images "
            "pass the deletion test"
        )
    rows = [
        {
            "class": row["class"],
            **{
                name: "-" if row[key] is None else f"{row[key]:.2%}"
                for name, key in (("precision", "precision"), ("recall", "recall"), ("F1", "f1"))
            },
            "images": str(row["support"]),
        }
        for row in report.per_class_scores
    ]
    _print_table(rows, wrap="class")
    if report.confused_pairs:
        pairs = ", ".join(
            f"{escape(p['true'])} as {escape(p['predicted'])} ({p['count']})"
            for p in report.confused_pairs
        )
        out.print(f"most confused (true as predicted): {pairs}")
    for figure in report.figures:
        out.print(f"wrote {escape(figure)}")
    if len(report.classes) > 20:
        out.print("(confusion matrix of more than 20 classes: see --json)")
        return
    _print_confusion(report.classes, report.confusion)


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
) -> None:
    """Serve the Gradio demo for the trained weights."""
    from zoo.demo.app import launch

    if threads:
        from zoo.threads import fix

        fix(threads)

    launch(registry(), weights_dir, host=host, port=port, share=share)


@app.command("export")
def export_model(
    weights: Annotated[
        str,
        typer.Argument(
            metavar="WEIGHTS", help="A weights file, or a model with --pretrained.", callback=expand
        ),
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="safetensors, onnx, torchscript, pt2, ...")
    ] = "safetensors",
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output file [default: WEIGHTS, the format's extension].",
            callback=expand,
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Compare the export with PyTorch on real images.")
    ] = False,
    pretrained: Annotated[
        bool, typer.Option("--pretrained", help="Export a model's ImageNet classifier.")
    ] = False,
) -> None:
    """Export weights to safetensors, ONNX, TorchScript or torch.export (pt2)."""
    from zoo.export import default_path, export
    from zoo.inference import Classifier

    reg = registry()
    if pretrained:
        from zoo.pretrained import imagenet_weights

        spec = reg.model(weights)
        classifier = Classifier.imagenet(reg, spec.name, imagenet_weights(spec.name))
        source = Path("weights") / f"{run_name(spec.name, 'imagenet')}.safetensors"
    elif not Path(weights).exists() and weights in reg.models:
        raise ZooError(f"{weights!r} is a model, not a weights file; add --pretrained for ImageNet")
    else:
        classifier = Classifier.load(reg, weights)
        source = Path(weights)
    path = export(reg, classifier, fmt, out_path or default_path(source, fmt))
    out.print(f"wrote {escape(str(path))} ({fmt}, {path.stat().st_size / 1e6:.1f} MB)")
    if not check:
        return
    from zoo.parity import RUNNERS
    from zoo.parity import check as parity

    if fmt not in RUNNERS:
        known = ", ".join(RUNNERS)
        _warn(f"no check for format {fmt!r}; --check covers {known}")
        return
    result = parity(reg, classifier, fmt, path)
    out.print(result.summary())
    if not result.ok:
        raise ZooError(f"{path}: the {fmt} export does not match PyTorch")


WeightsFile = Annotated[
    Path, typer.Argument(metavar="WEIGHTS", help="A weights file.", callback=expand)
]
ImageFiles = Annotated[
    list[Path],
    typer.Argument(
        metavar="IMAGE_OR_DIR...", help="Image files and folders (recursive).", callback=expand
    ),
]


@app.command()
def predict(
    weights: WeightsFile,
    images: ImageFiles,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Classes per image.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 32,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads [the fastest, measured].")
    ] = None,
    amp: Annotated[bool, typer.Option("--amp", help="bf16 autocast.")] = False,
) -> None:
    """Classify image files and folders: a table, or one JSON object per line."""
    from rich.progress import MofNCompleteColumn, Progress

    from zoo import threads as torch_threads
    from zoo.inference import Classifier
    from zoo.predict import find_images
    from zoo.predict import predict as classify

    classifier = Classifier.load(registry(), weights)
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
        for path, answer in classify(classifier, files, k=top_k, batch_size=batch_size, amp=amp):
            bar.advance(task)
            if isinstance(answer, ZooError):
                skipped += 1
                _warn(f"skipped {answer}")
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
        _print_ranked(rows)
    if skipped:
        _warn(f"skipped {skipped} unreadable of {len(files)} images")


@app.command("explain")
def explain_images(
    weights: WeightsFile,
    images: ImageFiles,
    method: Annotated[
        str | None,
        typer.Option(help="saliency, input-x-gradient, integrated-gradients or gradcam."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="PNG folder [RUNS_DIR/<weights name>/explain].",
            callback=expand,
        ),
    ] = None,
    runs_dir: Annotated[
        str,
        typer.Option(envvar="ZOO_RUNS_DIR", help="Run folders' parent [runs].", callback=expand),
    ] = "runs",
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Classes per image.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per pass.")] = 32,
) -> None:
    """Where the model looked: a heatmap of the evidence for each image's top class, checked by
    the deletion test; a PNG per image, or one JSON object per line."""
    from zoo.explain import METHODS, deletion, explain, save_figure
    from zoo.inference import Classifier
    from zoo.predict import find_images
    from zoo.preprocess import open_image, view

    if method is not None and method not in METHODS:
        raise ZooError(f"unknown explanation method {method!r}; choose from {', '.join(METHODS)}")
    classifier = Classifier.load(registry(), weights)
    files = find_images(images)
    folder = out_dir or Path(runs_dir) / weights.stem / "explain"
    table = Table("image", "top", "unknown", "deletion", "random", box=None)
    names: set[str] = set()
    done = 0
    for start in range(0, len(files), batch_size):
        decoded = []
        for path in files[start : start + batch_size]:
            try:
                decoded.append((path, open_image(path)))
            except ZooError as error:
                _warn(f"skipped {error}")
        if not decoded:
            continue
        batch = classifier.inputs([classifier.to_uint8(image) for _, image in decoded])
        predictions = classifier.predict(batch)
        explanation = explain(classifier, batch, method)
        scores = deletion(classifier, batch, explanation.heatmaps)
        for i, (path, image) in enumerate(decoded):
            top = classifier.top(predictions.probabilities[i], top_k)
            label, probability = next(iter(top.items()))
            heatmap = explanation.heatmaps[i]
            score, baseline = float(scores.scores[i]), float(scores.random[i])
            png = folder / _unique(names, path.stem)
            verdict = "passes" if score < baseline else "fails"
            unlike = ", unknown (unlike the training data)" if predictions.unknown[i] else ""
            caption = (
                f"{path.name}: {label} {probability:.1%}{unlike} ({explanation.method}); deletion "
                f"{score:.3f} vs random {baseline:.3f}: {verdict}"
            )
            save_figure(png, image, view(batch[i], classifier.input), heatmap, caption)
            done += 1
            if as_json:
                record = {
                    "path": str(path),
                    "top": [{"label": k, "probability": p} for k, p in top.items()],
                    "unknown": bool(predictions.unknown[i]),
                    "method": explanation.method,
                    "deletion": {"score": score, "random": baseline, "passed": score < baseline},
                    "png": str(png),
                    "heatmap": [[round(v, 4) for v in row] for row in heatmap.tolist()],
                }
                print(json.dumps(record), flush=True)
            else:
                table.add_row(
                    escape(str(path)),
                    f"{escape(label)} {probability:.1%}",
                    "yes" if predictions.unknown[i] else "",
                    f"{score:.3f}",
                    f"{baseline:.3f}",
                )
    if not done:
        raise ZooError(f"none of the {len(files)} images could be read")
    if not as_json:
        out.print(table)
        out.print(
            f"method {explanation.method}; deletion: the top class's mean probability as the "
            "hottest pixels go first, lower than a random order is better; PNGs (one per image, "
            f"named after it) in {escape(str(folder))}"
        )


def _unique(names: set[str], stem: str) -> str:
    """`stem.png`, or `stem-2.png`, ... if an earlier image of this run took that name."""
    name, n = f"{stem}.png", 1
    while name in names:
        n += 1
        name = f"{stem}-{n}.png"
    names.add(name)
    return name


def _print_table(
    rows: list[dict[str, str]], wrap: str, drop: tuple[str, ...] = (), min_width: int = 16
) -> None:
    """`rows` as a table whose `wrap` column alone wraps, in at least `min_width` characters;
    the `drop` columns are left out, in order, while the terminal (80 columns when piped) is
    too narrow for that."""
    columns = list(rows[0])
    for name in drop:
        if _width(rows, columns, wrap, min_width) <= out.width:
            break
        columns.remove(name)
    table = Table(box=None, pad_edge=False)
    for name in columns:
        wraps = name == wrap
        widest = max(len(name), *(len(row[name]) for row in rows))
        table.add_column(
            name, no_wrap=not wraps, min_width=min(min_width, widest) if wraps else None
        )
    for row in rows:
        table.add_row(*(escape(row[name]) for name in columns))
    out.print(table)


def _print_ranked(rows: list[dict[str, str]]) -> None:
    """Predictions as columns #1, #2, ..., or, where they do not fit, one line per rank."""
    if _width(rows, list(rows[0]), "image", 16) > out.width:
        rows = [
            {
                **{k: v if rank == "#1" else "" for k, v in row.items() if not k.startswith("#")},
                "rank": rank,
                "prediction": top,
            }
            for row in rows
            for rank, top in row.items()
            if rank.startswith("#")
        ]
    _print_table(rows, wrap="image")


def _print_confusion(classes: list[str], confusion: list[list[int]]) -> None:
    """The confusion matrix; with class numbers as column headers when the names are too wide."""
    cells = [[str(n) if n else "." for n in row] for row in confusion]
    rows = [
        {"true \\ predicted": name, **dict(zip(classes, row, strict=True))}
        for name, row in zip(classes, cells, strict=True)
    ]
    if _width(rows, list(rows[0]), "", 0) > out.width:
        rows = [
            {"true \\ predicted": f"{i} {name}", **{str(j): n for j, n in enumerate(row)}}
            for i, (name, row) in enumerate(zip(classes, cells, strict=True))
        ]
    _print_table(rows, wrap="true \\ predicted")


def _width(rows: list[dict[str, str]], columns: list[str], wrap: str, min_width: int) -> int:
    """The width of a table of `rows` with the `wrap` column at most `min_width` wide."""
    widest = [max(len(name), *(len(row[name]) for row in rows)) for name in columns]
    widths = [min(w, min_width) if c == wrap else w for c, w in zip(columns, widest, strict=True)]
    return sum(widths) + 2 * (len(columns) - 1)


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    _warn(str(message))


def main() -> None:
    """The console script: runs the app, turning user errors into one line and exit code 1."""
    warnings.showwarning = _show_warning
    try:
        code = app(standalone_mode=False)
    except click.NoArgsIsHelpError as error:
        error.show()
        sys.exit(0)
    except click.UsageError as error:  # a bad option, a missing argument, ...
        where = error.ctx.command_path if error.ctx else "zoo"
        _error(f"{error.format_message().rstrip('.')}; see {where} --help")
    except click.ClickException as error:
        _error(error.format_message())
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except ZooError as error:
        _error(str(error))
    except OSError as error:  # a full disk, an unwritable --out, ...
        where = f": {error.filename}" if error.filename else ""
        _error(f"{error.strerror or error}{where}")
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _error(message: str) -> NoReturn:
    err.print(f"[red]error:[/] {escape(message)}")
    sys.exit(1)
