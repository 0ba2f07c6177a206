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
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE_VARIABLE = "ZOO_CACHE"


def catalog_dir() -> Path:
    """zoo's cache folder: $ZOO_CACHE, else $XDG_CACHE_HOME/zoo, else ~/.cache/zoo."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "zoo"


def cached(key: str, compute: Callable[[], Any]) -> Any:
    """The data stored under `key` (a file name stem, such as `timm-1.0.31`), or `compute()`'s,
    stored there for next time. A missing, unreadable or unwritable file only costs the compute."""
    path = catalog_dir() / "catalog" / f"{re.sub(r'[^A-Za-z0-9._+-]', '_', key)}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    data = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            json.dump(data, f)
        os.replace(f.name, path)
    except OSError:
        pass  # a read-only home: compute again next time
    return data
