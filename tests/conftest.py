"""Shared fixtures: the real registry, a real trained LeNet, and the CLI run in-process."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from zoo.registry import get_registry

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_plugin_path(monkeypatch):
    """Tests see only the plugins they ask for."""
    monkeypatch.delenv("ZOO_PLUGINS_PATH", raising=False)


@pytest.fixture(autouse=True)
def _runs_in_tmp(monkeypatch, tmp_path_factory):
    """`zoo train` writes its run folders under pytest's temporary folder, not the cwd."""
    monkeypatch.setenv("ZOO_RUNS_DIR", str(tmp_path_factory.getbasetemp() / "runs"))


@pytest.fixture(scope="session")
def registry():
    return get_registry()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def zoo_cli(capsys, monkeypatch):
    """Run `zoo ARGS` through the console script's `main`, in this process."""
    from zoo.cli import main

    def run(args: str | list[str]) -> CliResult:
        argv = shlex.split(args) if isinstance(args, str) else list(args)
        monkeypatch.setattr(sys, "argv", ["zoo", *argv])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def lenet_weights(tmp_path_factory) -> Path:
    """A LeNet really trained on digits (few epochs), shared by the tests that need weights."""
    from zoo.train import TrainConfig, train

    registry = get_registry()
    spec = registry.model("lenet")
    path = tmp_path_factory.mktemp("weights") / "lenet-digits.safetensors"
    train(registry, spec, TrainConfig.for_model(spec, epochs=3), path, progress=False)
    return path
