"""Plugin discovery: the built-ins, the `zoo` entry-point group, then `.py` files in folders.

A plugin that fails to import is recorded with its error and a warning; the others load.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pluggy

from zoo import hookspecs

ENTRY_POINT_GROUP = "zoo"
PATH_VARIABLE = "ZOO_PLUGINS_PATH"

# Core hook implementations first, so every plugin after them can override them: the name
# `zoo plugins` shows, and the module that implements them.
CORE_PLUGINS = {
    "zoo.datasets": "zoo.data.sources",
    "zoo.finetune": "zoo.training.finetune",
    "zoo.export": "zoo.serving.export",
}
BUILTIN_PLUGINS = (
    "zoo.plugins.lenet",
    "zoo.plugins.cifar_cnn",
    "zoo.plugins.resnet18",
    "zoo.plugins.vgg16",
    "zoo.plugins.timm_models",
)


class PluginWarning(UserWarning):
    """A plugin failed, or overrode another plugin's model."""


@dataclass
class PluginInfo:
    """A plugin as `zoo plugins` shows it."""

    name: str
    source: str
    error: str | None = None
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)


def plugin_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    """The plugin folders: those given on the command line, then those in $ZOO_PLUGINS_PATH."""
    from_env = [Path(p) for p in os.environ.get(PATH_VARIABLE, "").split(os.pathsep) if p]
    return [*extra, *from_env]


def load_plugins(dirs: Iterable[Path] = ()) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """Register every plugin zoo can find; return the manager and what happened to each."""
    pm = pluggy.PluginManager("zoo")
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []

    def register(name: str, source: str, load) -> None:
        info = PluginInfo(name, source)
        infos.append(info)
        try:
            pm.register(load(), name=name)
        except Exception as error:  # a broken plugin must not take the others down
            info.error = f"{type(error).__name__}: {error}"
            warnings.warn(f"plugin {name} failed to load: {info.error}", PluginWarning, 2)

    for name, module in CORE_PLUGINS.items():
        register(name, "core", lambda m=module: importlib.import_module(m))
    for module in BUILTIN_PLUGINS:
        register(module, "built-in", lambda m=module: importlib.import_module(m))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        register(ep.name, f"entry point {ep.value}", ep.load)
    for folder in dirs:
        if not folder.is_dir():
            warnings.warn(f"plugin folder {folder} does not exist", PluginWarning, 2)
            continue
        for path in sorted(p for p in folder.glob("*.py") if p.is_file()):  # no FIFO
            register(str(path), "file", lambda p=path: _import_file(p))
    return pm, infos


def _import_file(path: Path) -> ModuleType:
    name = f"zoo_plugin_{path.stem}_{abs(hash(str(path.resolve()))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
