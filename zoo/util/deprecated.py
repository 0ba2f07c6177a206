"""Old import paths that plugins used before the core was grouped by stage: each still works
for one release, with a DeprecationWarning naming the public name to use instead."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def moved(old: str, names: dict[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module `__getattr__` for the old module `old`: each name in `names` maps to (module,
    attribute) where it lives now, and to the public name (`zoo.<attribute>`) to use."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        module, attribute = names[name]
        public = _public_name(module, attribute)
        warnings.warn(
            f"{old}.{name} is deprecated and will be removed in the next release; use {public}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), attribute)

    return __getattr__


def _public_name(module: str, attribute: str) -> str:
    import zoo

    for name, target in zoo._LAZY.items():
        if target == (module, attribute):
            return f"zoo.{name}"
    return f"{module}.{attribute}"
