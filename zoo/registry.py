"""The catalog of models and datasets, built from the plugins' hooks, and the calls into them."""

from __future__ import annotations

import difflib
import fnmatch
import os
import warnings
from collections.abc import Iterable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pluggy

from zoo.discovery import (
    CORE_PLUGINS,
    PluginInfo,
    PluginWarning,
    allow_list,
    load_plugins,
    plugin_dirs,
)
from zoo.errors import ZooError
from zoo.specs import DatasetSpec, ModelSpec, PretrainedWeights
from zoo.util.hub import reachable
from zoo.util.paths import expand

BY_NAME = ("zoo_build",)  # the hooks a plugin is asked for its own models only


class Registry:
    """Models and datasets by name, and the firstresult hooks that act on one model."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self.models: dict[str, ModelSpec] = self._collect("zoo_models", ModelSpec, "models")
        self.datasets: dict[str, DatasetSpec] = self._collect(
            "zoo_datasets", DatasetSpec, "datasets"
        )
        self.aliases: dict[str, str] = self._aliases()
        # Which models each plugin that implements zoo_models declared: its zoo_build is
        # asked about those alone (see `first_answer`).
        declaring = {impl.plugin_name for impl in pm.hook.zoo_models.get_hookimpls()}
        self.declared = {p.name: set(p.models) for p in plugins if p.name in declaring}

    def _aliases(self) -> dict[str, str]:
        """Each model's former names, unless a model now has that name (which then wins)."""
        aliases: dict[str, str] = {}
        for spec in self.models.values():
            for alias in spec.aliases:
                taken = self.models.get(alias) or self.models.get(aliases.get(alias, ""))
                if taken is not None:
                    warnings.warn(
                        f"alias {alias!r} of {spec.name!r} (plugin {spec.plugin}) is ignored: it "
                        f"already names {taken.name!r} (plugin {taken.plugin}); drop it from "
                        "ModelSpec.aliases",
                        PluginWarning,
                        2,
                    )
                    continue
                aliases[alias] = spec.name
        return aliases

    def _collect(self, hook: str, kind: type, field: str) -> dict[str, Any]:
        """Call a list-returning hook plugin by plugin, keeping each failure to its plugin."""
        by_name: dict[str, Any] = {}
        info = {p.name: p for p in self.plugins}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():  # registration order
            plugin = info[impl.plugin_name]
            try:
                items = list(impl.function() or [])
                bad = [item for item in items if not isinstance(item, kind)]
                if bad:
                    raise TypeError(f"{hook}() returned {bad[0]!r}, not a {kind.__name__}")
            except Exception as error:
                plugin.error = f"{hook}: {type(error).__name__}: {error}"
                warnings.warn(f"plugin {plugin.name} failed: {plugin.error}", PluginWarning, 2)
                continue
            for item in items:
                if item.name in by_name:
                    warnings.warn(
                        f"{item.name!r} from plugin {plugin.name} overrides the one from "
                        f"plugin {by_name[item.name].plugin}",
                        PluginWarning,
                        2,
                    )
                by_name[item.name] = replace(item, plugin=plugin.name)
                getattr(plugin, field).append(item.name)
        return by_name

    def find(self, pattern: str | None = None) -> list[ModelSpec]:
        """The models whose name matches a glob `pattern`, or the listed ones without one."""
        if pattern is None:
            return [spec for spec in self.models.values() if spec.listed]
        return [spec for name, spec in self.models.items() if fnmatch.fnmatchcase(name, pattern)]

    def did_you_mean(self, pattern: str) -> str:
        """ "; did you mean ...?" with the model names closest to a name or glob, or ""."""
        return _did_you_mean(pattern.strip("*?[]"), self.models)

    def model(self, name: str) -> ModelSpec:
        """The model called `name` (or once called so: an alias); a ZooError with the close
        matches if there is none."""
        if self.provides(name):
            return self.models[self.aliases.get(name, name)]
        raise ZooError(f"unknown model {name!r}{_did_you_mean(name, self.models)}")

    def provides(self, name: str) -> bool:
        """Whether a plugin provides the model `name` (or an alias of it)."""
        return name in self.models or name in self.aliases

    def dataset(self, name: str) -> tuple[DatasetSpec, Path | None]:
        """The dataset for `NAME` or `NAME:PATH`, with its path."""
        key, _, path = name.partition(":")
        spec = self.datasets.get(key)
        if spec is None:
            raise ZooError(f"unknown dataset {key!r}{_did_you_mean(key, self.datasets)}")
        if spec.takes_path != bool(path):
            usage = f"{key}:PATH" if spec.takes_path else key
            raise ZooError(f"dataset {key!r} is named as {usage!r}")
        return spec, Path(expand(path)) if path else None

    def pretrained(self, spec: ModelSpec) -> PretrainedWeights | None:
        """Where `spec`'s pretrained weights come from, as a plugin says (`zoo_pretrained`)."""
        return self.call_first("zoo_pretrained", spec)

    def check_pretrained(self, spec: ModelSpec) -> PretrainedWeights | None:
        """`spec`'s pretrained weights, if a plugin declares them; a ZooError at once, naming
        what would provide them, where they are neither here nor reachable."""
        weights = self.pretrained(spec)
        if weights is None and not spec.pretrained:
            raise ZooError(f"model {spec.name!r} has no pretrained weights")
        if weights is not None and weights.file is None:
            if not weights.url:
                raise ZooError(f"no pretrained weights for {spec.name} here: {weights.provider}")
            if not reachable(weights.url):
                host = urlsplit(weights.url).hostname
                raise ZooError(
                    f"no pretrained weights for {spec.name} here, and {host} is unreachable: "
                    f"{weights.provider}"
                )
        return weights

    def build(self, spec: ModelSpec, num_classes: int, pretrained: bool = False):
        """Build `spec`'s model through `zoo_build`; with `pretrained`, only once its weights
        are here or reachable (`check_pretrained`)."""
        if pretrained:
            self.check_pretrained(spec)
        model, builder = self.first_answer(
            "zoo_build", spec, num_classes=num_classes, pretrained=pretrained
        )
        if model is None:
            raise ZooError(f"no plugin builds model {spec.name!r} (from {spec.plugin})")
        _check_modules(spec, model, builder)
        return model

    def finetune(self, spec: ModelSpec, model, strategy: str) -> list[dict]:
        """Prepare `model` for `strategy` through `zoo_finetune`; return the param groups."""
        groups = self.call_first("zoo_finetune", spec, model=model, strategy=strategy)
        if groups is None:
            raise ZooError(
                f"model {spec.name!r} has no fine-tune strategy {strategy!r}; it declares "
                f"{', '.join(spec.strategies)}"
            )
        return groups

    def call_first(self, hook: str, spec: ModelSpec, **kwargs: Any) -> Any:
        """The first answer of a firstresult hook for `spec` (see `first_answer`), or None."""
        return self.first_answer(hook, spec, **kwargs)[0]

    def first_answer(self, hook: str, spec: ModelSpec, **kwargs: Any) -> tuple[Any, str | None]:
        """Call a firstresult hook for `spec`, later plugins first; the first result that is
        not None and the plugin that gave it, or (None, None).

        `zoo_build` is dispatched by name: a plugin that declares models is asked about the
        ones it declared, and no other; one that declares none (an override) is asked about
        every model. `zoo_finetune` and `zoo_export` are asked about every model: a strategy
        or a format may apply to any.
        A result of the wrong type counts as a failure. A failure in the plugin that owns
        `spec` is the user's error; one in any other plugin is that plugin's bug, so it is
        warned about and skipped.
        """
        kwargs["spec"] = spec
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            declared = self.declared.get(impl.plugin_name)
            if hook in BY_NAME and declared is not None and spec.name not in declared:
                continue
            try:
                result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
                if result is not None:
                    _check_result(hook, result, kwargs)
            except ZooError as error:
                if impl.plugin_name in (spec.plugin, *CORE_PLUGINS):
                    raise
                where = f"plugin {impl.plugin_name} in {hook} for {spec.name!r}"
                raise ZooError(f"{where}: {error}") from error
            except Exception as error:
                message = f"plugin {impl.plugin_name} failed in {hook} for {spec.name!r}: {error}"
                if impl.plugin_name == spec.plugin:
                    raise ZooError(message) from error
                warnings.warn(message, PluginWarning, 2)
                continue
            if result is not None:
                return result, impl.plugin_name
        return None, None


def _check_result(hook: str, result: Any, kwargs: dict[str, Any]) -> None:
    """A TypeError unless `result` is what `hook` promises (see zoo.hookspecs)."""
    if hook == "zoo_pretrained" and not isinstance(result, PretrainedWeights):
        raise TypeError(f"returned {_kind(result)}, not a PretrainedWeights")
    if hook == "zoo_build":
        from torch import nn

        if not isinstance(result, nn.Module):
            raise TypeError(f"returned {_kind(result)}, not an nn.Module")
    if hook == "zoo_finetune":
        owned = {id(p) for p in kwargs["model"].parameters()}
        if not isinstance(result, list) or not all(
            isinstance(g, dict) and "params" in g for g in result
        ):
            raise TypeError(f"returned {_kind(result)}, not a list of parameter groups")
        for group in result:  # a generator would be spent by this check
            group["params"] = _as_list(group["params"])
        params = [p for group in result for p in group["params"]]
        if not params or not all(id(p) in owned for p in params):
            raise TypeError("returned parameter groups that are not the model's parameters")
    if hook == "zoo_export" and not isinstance(result, str | os.PathLike):
        raise TypeError(f"returned {_kind(result)}, not the path it wrote")


def _check_modules(spec: ModelSpec, model: Any, builder: str | None) -> None:
    """A ZooError naming the fix if `spec.head` or `spec.cam_layer` names no module of
    `model`, which plugin `builder` built (the head strategy, --init-from and Grad-CAM would
    fail on it, or quietly not run)."""
    names = [name for name, _ in model.named_modules() if name]
    for field, name in (("head", spec.head), ("cam_layer", spec.cam_layer)):
        if name is None or name in names:
            continue
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        top = [n for n in names if "." not in n][:8]
        hint = f"name one of its modules: {', '.join(top)}, ... (print(model) shows them)"
        if close:
            hint = f"did you mean {', '.join(map(repr, close))}?"
        by = f"plugin {builder}'s " if builder != spec.plugin else ""
        raise ZooError(
            f"plugin {spec.plugin}: ModelSpec {field}={name!r} (in zoo_models) names no module "
            f"of the model {by}zoo_build gives for {spec.name!r}; {hint}"
        )


def _as_list(params: Any) -> list[Any]:
    return [params] if hasattr(params, "grad") else list(params)


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


@cache
def _load(dirs: tuple[Path, ...], allow: frozenset[str] | None) -> Registry:
    return Registry(*load_plugins(dirs, allow))


def get_registry(extra_dirs: Iterable[Path] = (), plugins: str | None = None) -> Registry:
    """The registry for the built-ins, installed plugins and the plugin folders (cached); of
    the installed plugins and files, only those the allow-list names (`plugins`, a
    comma-separated list, else $ZOO_LOAD_PLUGINS) when one is set."""
    dirs = tuple(path.absolute() for path in plugin_dirs(extra_dirs))  # a cache key per cwd
    return _load(dirs, allow_list(plugins))
