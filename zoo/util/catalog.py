"""Plain-data catalogs kept on disk, so that listing models imports no torch.

A plugin whose catalog is costly to compute (timm's 1,300 architectures need `import timm`, and
with it torch) computes it once per version of what it describes and reads it back afterwards::

    data = catalog.cached(f"timm-{version}", compute)   # JSON-serialisable data

The files live in `catalog_dir()`: $ZOO_CACHE, else $XDG_CACHE_HOME/zoo, else ~/.cache/zoo.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.util.files import read_json

CACHE_VARIABLE = "ZOO_CACHE"
MAX_BYTES = 16_000_000  # a catalog file read at most (timm's is 0.2 MB)


def catalog_dir() -> Path:
    """zoo's cache folder: $ZOO_CACHE, else $XDG_CACHE_HOME/zoo, else ~/.cache/zoo."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "zoo"


def cached(key: str, compute: Callable[[], Any], check: Callable[[Any], None] | None = None) -> Any:
    """The data stored under `key` (a file name stem, such as `timm-1.0.31`), or `compute()`'s,
    stored there for next time. A missing, unreadable or unwritable file only costs the compute.

    What is read is not trusted: only a regular file of at most `MAX_BYTES` is opened (never a
    FIFO, whose read would hang), it must be strict JSON (no NaN, no nesting deeper than
    Python's parser goes), and `check(data)`, if given, must not raise (ValueError, TypeError,
    KeyError). A file that fails is named in a warning and rebuilt."""
    path = catalog_dir() / "catalog" / f"{re.sub(r'[^A-Za-z0-9._+-]', '_', key)}.json"
    try:
        data = read_json(path, MAX_BYTES)
        if check is not None:
            check(data)
        return data
    except OSError:  # none yet, or unreadable: computed
        pass
    except (ValueError, TypeError, KeyError, RecursionError) as error:
        why = "nested too deeply" if isinstance(error, RecursionError) else str(error) or "?"
        warnings.warn(f"the catalog cache {path} was damaged ({why}); rebuilding it", stacklevel=2)
    data = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            json.dump(data, f)
        os.replace(f.name, path)
    except OSError:
        pass  # a read-only home: compute again next time
    return data
