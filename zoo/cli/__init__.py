"""The `zoo` command line: one module per command group on one typer app. Heavy imports (torch,
gradio) happen inside the commands that need them, so `zoo --help` starts fast."""

from __future__ import annotations

import gc
import sys
import warnings
from typing import NoReturn

import typer
from rich.markup import escape

# Each module adds its commands, in the order `zoo --help` lists them.
# isort: off
from zoo.cli import models, plugin, data, train, trust, serve  # noqa: F401

# isort: on
from zoo.cli.app import app
from zoo.cli.output import err, warn
from zoo.errors import ZooError

try:  # typer >= 0.24 ships its own copy of click, whose exceptions its parser raises
    from typer._click import exceptions as click
except ImportError:
    from click import exceptions as click

__all__ = ["app", "main"]


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    warn(str(message))


def main() -> None:
    """The console script: runs the app, turning user errors into one line and exit code 1."""
    # Start-up's imports (torch, gradio) make a million objects: at Python's default threshold
    # (a collection every 700) collecting costs 0.4-0.7 s of it; at 10,000 it is 14x rarer.
    gc.set_threshold(10_000, 10, 10)
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
