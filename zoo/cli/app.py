"""The typer app every command module adds its commands to, and the registry they share."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from zoo.util.paths import expand

app = typer.Typer(
    help="A plugin-based PyTorch image-classification model zoo with a Gradio demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_plugin_dirs: list[Path] = []
_started = [time.perf_counter()]  # when the running command began: its callback sets it


def started() -> float:
    """When the running command began (a `time.perf_counter()`), its arguments just parsed:
    after the CLI's own imports (about 0.1 s), before any of torch's."""
    return _started[0]


def registry(plugins: str | None = None):
    """The registry of every plugin found, with the folders of `--plugins-dir`; of the
    installed plugins and files, only those `plugins` names (else $ZOO_LOAD_PLUGINS) if set."""
    from zoo.registry import get_registry

    return get_registry(_plugin_dirs, plugins)


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
    _started[0] = time.perf_counter()
    _plugin_dirs[:] = plugins_dir or []


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RunsDir = Annotated[
    str, typer.Option(envvar="ZOO_RUNS_DIR", help="Run folders' parent [runs].", callback=expand)
]
JsonLines = Annotated[bool, typer.Option("--json", help="Print JSON lines.")]
WeightsFile = Annotated[
    Path,
    typer.Argument(
        metavar="WEIGHTS",
        help="A weights file, or imagenet/MODEL: a model's pretrained ImageNet classifier.",
        callback=expand,
    ),
]
ImageFiles = Annotated[
    list[Path],
    typer.Argument(
        metavar="IMAGE_OR_DIR...", help="Image files and folders (recursive).", callback=expand
    ),
]
