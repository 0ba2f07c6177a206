"""`zoo datasets` and `zoo datasets prepare`: what `zoo train` takes, and the prepared caches."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from zoo.cli.app import JsonFlag, app, registry
from zoo.cli.output import out, print_table
from zoo.errors import ZooError
from zoo.util.paths import expand

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
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """List the datasets zoo train and zoo eval take, where each is found, and the prepared
    ones in the cache."""
    if ctx.invoked_subcommand:
        return
    from zoo.data import cache

    specs = registry().datasets.values()
    rows = [
        {
            "name": f"{s.name}:PATH" if s.takes_path else s.name,
            "summary": s.summary,
            "flip": s.flip,
            "found": s.locate(data_dir) if s.locate else None,
            "plugin": s.plugin,
        }
        for s in specs
    ]
    root = cache.dataset_cache_dir(cache.data_dir(data_dir))
    cached = cache.listing(root)
    if as_json:
        print(json.dumps({"datasets": rows, "cache": cached}, indent=2))
        return
    table = [
        {
            "dataset": row["name"],
            "found": row["found"] or ("PATH" if row["name"].endswith(":PATH") else "not here"),
            "augment flips": "yes" if row["flip"] else "no",
            "plugin": row["plugin"],
            "summary": row["summary"],
        }
        for row in rows
    ]
    print_table(table, wrap="summary", drop=("plugin", "augment flips"))
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
    from zoo.data.sources import load_dataset

    reg = registry()
    spec, _ = reg.dataset(name)
    if not spec.takes_path:
        raise ZooError(f"{name} needs no preparing: it is read whole into memory")
    if (model is None) == (image_size is None):
        raise ZooError("give --model NAME or --image-size N (the size to prepare for)")
    size = image_size or reg.model(model).input.image_size
    _, data = load_dataset(
        reg, name, size, data_dir, workers=workers, augment=augment, progress=not quiet
    )
    images = len(data.train_labels) + len(data.test_labels)
    out.print(f"{escape(name)}: {images} images ready at {data.train_images.shape[-1]} px")
