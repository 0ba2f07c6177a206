"""`zoo train --config FILE.toml`: the command's options, read from a TOML file.

Keys are the long option names, with dashes or underscores (`batch-size = 128`); the command
line wins over the file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def read_settings(path: Path, types: dict[str, str]) -> dict[str, Any]:
    """The settings in TOML file `path`, checked against `types` ({key: "int | None", ...})."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ZooError(f"{path}: no such config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as error:
        raise ZooError(f"{path}: not a valid TOML file ({error})") from None
    settings = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in types:
            known = ", ".join(sorted(k.replace("_", "-") for k in types))
            raise ZooError(f"{path}: unknown setting {key!r}; known: {known}")
        kinds = [k.strip() for k in types[name].split("|") if k.strip() != "None"]
        expected = tuple(_TYPES[kind] for kind in kinds)
        if float in expected and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            words = " or ".join(_WORDS[kind] for kind in expected)
            raise ZooError(f"{path}: {key} must be {words}, not {value!r}")
        settings[name] = value
    return settings
