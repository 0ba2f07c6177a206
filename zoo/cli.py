"""The `zoo` command line. Heavy imports (torch, gradio) happen inside the commands that need
them, so `zoo --help` starts fast."""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from zoo.errors import ZooError

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
            metavar="DIR", help="A folder of .py plugin files (repeatable; also $ZOO_PLUGINS_PATH)."
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
    specs = registry().find(pattern)
    if as_json:
        print(json.dumps([spec.to_dict() for spec in specs], indent=2))
        return
    table = Table(box=None)
    for column in ("model", "input", "pretrained", "plugin"):
        table.add_column(column, no_wrap=True)
    table.add_column("summary")
    for spec in specs:
        shape = f"{spec.input.channels}x{spec.input.size}x{spec.input.size}"
        table.add_row(spec.name, shape, "yes" if spec.pretrained else "", spec.plugin, spec.summary)
    out.print(table)
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


@app.command()
def train(
    name: Annotated[str, typer.Argument(help="The model's name (zoo list).")],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="digits, ...")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd, adam or adamw.")] = None,
    schedule: Annotated[str | None, typer.Option(help="onecycle, cosine or none.")] = None,
    weight_decay: Annotated[float | None, typer.Option()] = None,
    strategy: Annotated[str | None, typer.Option(help="full or head.")] = None,
    pretrained: Annotated[bool, typer.Option(help="Start from ImageNet weights.")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    limit: Annotated[int | None, typer.Option(help="Train on N images.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    out_dir: Annotated[Path, typer.Option("--out", help="Weights folder.")] = Path("weights"),
    name_of_run: Annotated[str | None, typer.Option("--run-name")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Fine-tune a model; write weights/<model>-<dataset>.safetensors."""
    from zoo.train import TrainConfig
    from zoo.train import train as run_training

    reg = registry()
    spec = reg.model(name)
    config = TrainConfig.for_model(
        spec,
        dataset=dataset,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        schedule=schedule,
        weight_decay=weight_decay,
        strategy=strategy,
        pretrained=pretrained,
        seed=seed,
        limit=limit,
        device=device,
    )
    path = out_dir / f"{name_of_run or run_name(spec.name, config.dataset)}.safetensors"
    result = run_training(reg, spec, config, path, progress=not quiet)
    out.print(
        f"{spec.name} on {config.dataset}: test accuracy {result.accuracy:.2%} "
        f"in {result.seconds:.1f}s -> {result.path}"
    )


@app.command()
def demo(
    weights_dir: Annotated[Path, typer.Option(help="Weights folder.")] = Path("weights"),
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 7860,
    share: Annotated[bool, typer.Option(help="Ask Gradio for a public link.")] = False,
) -> None:
    """Serve the Gradio demo for the trained weights."""
    from zoo.demo.app import launch

    launch(registry(), weights_dir, host=host, port=port, share=share)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err.print(f"[yellow]warning:[/] {escape(str(message))}")


def main() -> None:
    """The console script: runs the app, turning user errors into one line and exit code 1."""
    warnings.showwarning = _show_warning
    try:
        app()
    except ZooError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        sys.exit(1)
    except OSError as error:  # a full disk, an unwritable --out, ...
        where = f": {error.filename}" if error.filename else ""
        err.print(f"[red]error:[/] {escape(str(error.strerror or error))}{escape(where)}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
