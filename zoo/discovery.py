"""Plugin discovery: the built-ins, the `zoo` entry-point group, then `.py` files in folders.

A plugin that fails to import, or whose hooks are not zoo's (a misspelt or unmarked hook name,
an argument the hook does not pass), is recorded with its error and a warning, and not
registered; the others load. An allow-list ($ZOO_LOAD_PLUGINS, `zoo demo --plugins`) keeps
every entry point and plugin file it does not name out, unimported; the core and the
built-ins always load.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from zoo import __version__, hookspecs

ENTRY_POINT_GROUP = "zoo"
PATH_VARIABLE = "ZOO_PLUGINS_PATH"
ALLOW_VARIABLE = "ZOO_LOAD_PLUGINS"
DISTRIBUTION = "zoo-models"  # the distribution of the core and the built-in plugins

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
ALWAYS_LOADED = ("core", "built-in")  # sources the allow-list does not apply to
HOOKS = tuple(name for name in vars(hookspecs) if name.startswith("zoo_"))


class PluginWarning(UserWarning):
    """A plugin failed, or overrode another plugin's model."""


@dataclass
class PluginInfo:
    """A plugin as `zoo plugins` shows it: where it comes from, the hooks it implements, what
    it provides, and its error if it failed (or why it was skipped)."""

    name: str
    source: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    skipped: str | None = None
    hooks: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)


def plugin_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    """The plugin folders: those given on the command line, then those in $ZOO_PLUGINS_PATH."""
    from_env = [Path(p) for p in os.environ.get(PATH_VARIABLE, "").split(os.pathsep) if p]
    return [*extra, *from_env]


def allow_list(given: str | None = None) -> frozenset[str] | None:
    """The names of the plugins to load from `given` (`--plugins`), else $ZOO_LOAD_PLUGINS:
    comma-separated; empty means none; None (neither set) means every plugin found."""
    names = os.environ.get(ALLOW_VARIABLE) if given is None else given
    if names is None:
        return None
    return frozenset(normalise(n) for n in names.split(",") if n.strip())


def normalise(name: str) -> str:
    """A plugin or distribution name as PEP 503 compares them (`Zoo_Acme` is `zoo-acme`)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def load_plugins(
    dirs: Iterable[Path] = (), allow: frozenset[str] | None = None
) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """Register every plugin zoo can find (of the entry points and files, only those `allow`
    names, when given); return the manager and what happened to each."""
    pm = pluggy.PluginManager("zoo")
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    matched: set[str] = set()

    def register(info: PluginInfo, load: Callable[[], Any]) -> None:
        """Register what `load` returns as `info.name`, unless the allow-list leaves it out."""
        infos.append(info)
        if info.source not in ALWAYS_LOADED and allow is not None:
            if not allow & selectors(info):
                info.skipped = f"not in the allow-list (${ALLOW_VARIABLE} or --plugins)"
                return
            matched.update(allow & selectors(info))
        try:
            plugin = load()
            check_hooks(pm, plugin)
            pm.register(plugin, name=info.name)
        except Exception as error:  # a broken plugin must not take the others down
            info.error = load_error(error, info)
            warnings.warn(f"plugin {info.name} failed to load: {info.error}", PluginWarning, 2)
            return
        info.hooks = [c.name for c in pm.get_hookcallers(plugin) or []]
        info.hooks.sort(key=HOOKS.index)

    for name, module in CORE_PLUGINS.items():
        info = PluginInfo(name, "core", DISTRIBUTION, __version__)
        register(info, lambda m=module: importlib.import_module(m))
    for module in BUILTIN_PLUGINS:
        info = PluginInfo(module, "built-in", DISTRIBUTION, __version__)
        register(info, lambda m=module: importlib.import_module(m))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        info = PluginInfo(ep.name, f"entry point {ep.value}", *_name_and_version(ep))
        register(info, ep.load)
    for folder in dirs:
        if not folder.is_dir():
            warnings.warn(f"plugin folder {folder} does not exist", PluginWarning, 2)
            continue
        for path in sorted(p for p in folder.glob("*.py") if p.is_file()):  # no FIFO
            register(PluginInfo(str(path), "file"), lambda p=path: _import_file(p))
    for name in sorted((allow or frozenset()) - matched):
        warnings.warn(
            f"the allow-list names {name!r}, which is no installed plugin (entry-point or "
            f"distribution name) or plugin file (its stem); `zoo plugins` lists them",
            PluginWarning,
            2,
        )
    return pm, infos


def selectors(info: PluginInfo) -> set[str]:
    """The names an allow-list may give a plugin by, normalised: a file's stem; an entry
    point's name or its distribution's; the name of a built-in or core plugin."""
    if info.source == "file":
        names = [Path(info.name).stem]
    else:
        names = [info.name, *filter(None, [info.distribution])]
    return {normalise(name) for name in names}


def check_hooks(pm: pluggy.PluginManager, plugin: Any) -> None:
    """A TypeError naming the fix if `plugin` marks a function that is no zoo hook (pluggy's
    `check_pending`, per plugin), leaves a hook's function unmarked, or takes an argument its
    hook does not pass: each of these would otherwise be silently ignored or fail later."""
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        hook = (opts or {}).get("specname") or attr
        if opts is None:
            if attr in HOOKS and callable(getattr(plugin, attr)):
                raise TypeError(f"{attr} is not marked: put @zoo.hookimpl above it")
            continue
        if hook not in HOOKS:
            if opts.get("optionalhook"):
                continue
            close = difflib.get_close_matches(hook, HOOKS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the hooks are {', '.join(HOOKS)}"
            raise TypeError(f"{hook} is no zoo hook; {hint}")
        given = getattr(pm.hook, hook).spec.argnames
        extra = [name for name in _arguments(getattr(plugin, attr)) if name not in given]
        if extra:
            raise TypeError(
                f"{hook} takes {', '.join(extra)}, which the hook does not pass; "
                f"it passes {', '.join(given)} (take any of them, by these names)"
            )


def load_error(error: Exception, info: PluginInfo) -> str:
    """The one-line reason a plugin failed to load, naming the distribution to (re)install
    when a module is missing."""
    text = f"{type(error).__name__}: {' '.join(str(error).split())}"
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return text
    module = info.source.removeprefix("entry point ").split(":")[0]
    if info.distribution and module.split(".")[0] == error.name.split(".")[0]:
        return (
            f"{text}; the distribution {info.distribution} {info.version} is installed without "
            f"its module: pip install --force-reinstall {info.distribution} (or uninstall it)"
        )
    needed = f" ({info.distribution} needs it)" if info.distribution else ""
    return f"{text}; install the package that provides {error.name.split('.')[0]!r}{needed}"


def _arguments(function: Callable[..., Any]) -> list[str]:
    """The arguments pluggy passes to a hook implementation: those without a default."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = inspect.signature(function).parameters.values()
    return [p.name for p in parameters if p.kind in kinds and p.default is p.empty]


def _name_and_version(ep: EntryPoint) -> tuple[str | None, str | None]:
    """The distribution an entry point comes from, and its version."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


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
