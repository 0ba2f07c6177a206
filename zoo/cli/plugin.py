"""`zoo plugin new`: a plugin package to start from (`zoo.scaffold`)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from zoo.cli.app import app
from zoo.cli.output import out
from zoo.util.paths import expand

plugin_app = typer.Typer(help="Write plugins: zoo plugin new NAME.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")


class Kind(str, Enum):
    model = "model"
    dataset = "dataset"
    export = "export"


@plugin_app.command("new")
def new(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="The plugin's name, also its model, dataset or format (acme)."
        ),
    ],
    kind: Annotated[Kind, typer.Option(help="What the plugin adds.")] = Kind.model,
    parent: Annotated[
        Path,
        typer.Option(
            "--dir", metavar="DIR", help="Where its folder zoo-NAME goes.", callback=expand
        ),
    ] = Path("."),
) -> None:
    """Write a plugin package: pyproject.toml (entry point, zoo-models range), the plugin
    module with commented hooks, tests on zoo.testing's harness, and a README."""
    from zoo.scaffold import new_plugin

    folder = new_plugin(name, kind.value, parent)
    out.print(f"wrote {escape(str(folder))}/ ({kind.value} plugin)")
    out.print(escape(f"next: cd {folder} && pip install -e '.[test]' && pytest"))
