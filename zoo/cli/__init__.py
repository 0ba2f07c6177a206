"""The `zoo` command line: one module per command group on one typer app. Heavy imports (torch,
gradio) happen inside the commands that need them, so `zoo --help` starts fast."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
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

__all__ = ["app", "main", "run"]

_status = 1  # the exit status of `main`'s process: an uncaught exception's until `run` ends


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    warn(str(message))


def main() -> NoReturn:
    """The console script: `run`, then an exit that skips the interpreter's teardown."""
    global _status
    atexit.register(_leave)  # the first exit handler registered runs last
    try:
        run()
    except SystemExit as stop:
        _status = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        raise


def _leave() -> None:
    """End the process now, its threads joined, its other exit handlers run and its output
    flushed. The interpreter's teardown would collect its objects once more (a million with
    torch: 0.6-0.9 s) and run the C++ libraries' destructors, which map 130 MB more of their
    pages: the peak memory of a short run."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(_status)


def run() -> NoReturn:
    """Run the app, turning user errors into one line and exit code 1 (in this process, as
    the tests call it)."""
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
