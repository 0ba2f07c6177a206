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
    from zoo.introspect import autograd_graph, forward_loss, parameter_count, parameter_shapes

    reg = registry()
    spec = reg.model(name)
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
            help="Random padded crops, and flips where the dataset allows (not digits).",
        ),
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
    reg = registry()
    spec = reg.model(name)
    out_folder = Path(settings.pop("out", "weights"))
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


@app.command("datasets")
def list_datasets(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False):
    """List the datasets zoo train and zoo eval take."""
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
    if as_json:
        print(json.dumps(rows, indent=2))
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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Test accuracy, per-class accuracy and confusion matrix of a weights file."""
    from dataclasses import asdict

    from zoo.evaluate import evaluate_weights

    report = evaluate_weights(registry(), weights, dataset, data_dir, download, device, batch_size)
    if as_json:
        print(json.dumps(asdict(report), indent=2))
        return
    out.print(
        f"{escape(report.weights)} on {escape(report.dataset)} ({report.images} test images): "
        f"accuracy [bold]{report.accuracy:.2%}[/]"
    )
    per_class = zip(report.classes, report.per_class, report.confusion, strict=True)
    rows = [
        {"class": name, "accuracy": "-" if acc is None else f"{acc:.2%}", "images": str(sum(row))}
        for name, acc, row in per_class
    ]
    _print_table(rows, wrap="class")
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
) -> None:
    """Serve the Gradio demo for the trained weights."""
    from zoo.demo.app import launch

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


@app.command()
def predict(
    weights: Annotated[
        Path, typer.Argument(metavar="WEIGHTS", help="A weights file.", callback=expand)
    ],
    images: Annotated[
        list[Path],
        typer.Argument(
            metavar="IMAGE_OR_DIR...", help="Image files and folders (recursive).", callback=expand
        ),
    ],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Classes per image.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 32,
) -> None:
    """Classify image files and folders: a table, or one JSON object per line."""
    from rich.progress import MofNCompleteColumn, Progress

    from zoo.inference import Classifier
    from zoo.predict import find_images
    from zoo.predict import predict as classify

    classifier = Classifier.load(registry(), weights)
    files = find_images(images)
    rows: list[dict[str, str]] = []
    skipped = 0
    columns = (*Progress.get_default_columns(), MofNCompleteColumn())
    quiet = not err.is_terminal
    progress = Progress(*columns, console=err, transient=True, redirect_stdout=False, disable=quiet)
    with progress as bar:
        task = bar.add_task("predicting", total=len(files))
        for path, top in classify(classifier, files, k=top_k, batch_size=batch_size):
            bar.advance(task)
            if isinstance(top, ZooError):
                skipped += 1
                _warn(f"skipped {top}")
            elif as_json:
                labels = [{"label": label, "probability": p} for label, p in top.items()]
                print(json.dumps({"path": str(path), "top": labels}), flush=True)
            else:
                ranked = {f"#{rank}": f"{c} {p:.1%}" for rank, (c, p) in enumerate(top.items(), 1)}
                rows.append({"image": str(path), **ranked})
    if skipped == len(files):
        raise ZooError(f"none of the {len(files)} images could be read")
    if rows:
        _print_ranked(rows)
    if skipped:
        _warn(f"skipped {skipped} unreadable of {len(files)} images")


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
            {"image": row["image"] if rank == "#1" else "", "rank": rank, "prediction": top}
            for row in rows
            for rank, top in list(row.items())[1:]
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
