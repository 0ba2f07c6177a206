"""The on-disk cache of prepared images, shared by every run, `zoo eval` and torchrun process.

A dataset of files of varying sizes (`folder:PATH`, `hf:NAME`) is decoded once, in parallel
by Hugging Face `datasets` (`Dataset.map`, `num_proc` processes), into Arrow files of uint8
images of one stored size, under `<data dir>/cache/<name>-<key>/`. The key covers the source
(file paths, sizes and mtimes, or a Hugging Face fingerprint), the stored size and
`PREP_VERSION`, so a changed source gets a cache of its own. `manifest.json`, written last,
marks a finished cache and is all that `zoo datasets` reads: this module imports neither torch
nor `datasets` at module level.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PREP_VERSION = 1  # bump when the stored pixels would change
MANIFEST = "manifest.json"
AUGMENT_MARGIN = 8 / 7  # images for random-resized crops are stored larger: 224 -> 256
ROWS_PER_BATCH = 100  # rows per Arrow record batch and per decoding call


DATA_VARIABLE = "ZOO_DATA"


def data_dir(given: str | Path | None = None) -> Path:
    """Where datasets live: `given`, else $ZOO_DATA, else ~/.cache/zoo/data."""
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get(DATA_VARIABLE) or "~/.cache/zoo/data").expanduser()


def dataset_cache_dir(data: Path) -> Path:
    """The cache's folder under a data folder."""
    return Path(data) / "cache"


def stored_size(size: int, augment: bool) -> int:
    """The square size images are stored at for a model of input `size`."""
    return math.ceil(size * AUGMENT_MARGIN) if augment else size


def cache_key(*parts: Any) -> str:
    """A short digest of `parts` (JSON-encodable), with the preprocessing version."""
    text = json.dumps([PREP_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def listing(root: Path) -> list[dict[str, Any]]:
    """The finished caches under `root`: their manifests, folders and bytes on disk."""
    entries = []
    for folder in sorted(Path(root).glob("*/" + MANIFEST)):
        try:
            manifest = json.loads(folder.read_text())
        except (OSError, ValueError):
            continue
        size = sum(f.stat().st_size for f in folder.parent.iterdir() if f.is_file())
        entries.append({**manifest, "folder": str(folder.parent), "bytes": size})
    return entries


def build_cache(
    root: Path,
    name: str,
    key: str,
    source: Callable[[], Any],
    size: int,
    workers: int,
    progress: bool,
    describe: dict[str, Any],
) -> Path:
    """The cache folder of `name`/`key`; built first where missing by decoding, in `workers`
    processes, the "source" column of the `datasets.Dataset` that `source()` returns (its other
    columns, such as "label" and "held_out", are kept; `describe` goes into the manifest)."""
    folder = Path(root) / f"{_slug(name)}-{key}"
    if (folder / MANIFEST).is_file():
        return folder
    import datasets

    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".{folder.name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.perf_counter()
    try:
        with progress_bars(progress):
            rows = source()
            features = rows.features.copy()
            del features["source"]
            features["image"] = datasets.Array3D((3, size, size), "uint8")
            features["error"] = datasets.Value("string")
            table = rows.map(
                decode,
                batched=True,
                batch_size=ROWS_PER_BATCH,
                writer_batch_size=ROWS_PER_BATCH,
                num_proc=workers if workers > 1 else None,
                fn_kwargs={"size": size, "threads": 1 if workers > 1 else None},
                features=features,
                remove_columns=["source"],
                cache_file_name=str(partial / "data.arrow"),
                new_fingerprint=key,
                desc=f"preparing {name}",
            )
        manifest = {
            **describe,
            "key": key,
            "size": size,
            "rows": len(table),
            "files": [Path(f["filename"]).name for f in table.cache_files],
            "version": PREP_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        del table, rows
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2))
        try:
            partial.rename(folder)
        except OSError:  # another process finished the same cache first
            if not (folder / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    seconds = time.perf_counter() - started
    print(f"prepared {name} ({manifest['rows']} images) in {seconds:.1f}s", file=sys.stderr)
    return folder


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Hugging Face `datasets`' progress bars on or off for a while."""
    import datasets

    before = datasets.is_progress_bar_enabled()
    (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()
    try:
        yield
    finally:
        (datasets.enable_progress_bars if before else datasets.disable_progress_bars)()


def decode(batch: dict, size: int, threads: int | None) -> dict:
    """`Dataset.map` function: a batch's "source" column (file paths, or Hugging Face image
    dicts of bytes and path) -> "image", uint8 (n, 3, size, size) resized and cropped as
    `zoo.data.preprocess` does, and "error" ("" where the image was read)."""
    import io

    import numpy as np

    from zoo.data.preprocess import open_image, pil_to_uint8, resize_uint8
    from zoo.errors import ZooError

    if threads:  # a decoding process of its own: one thread each
        import torch

        torch.set_num_threads(threads)
    images = np.zeros((len(batch["source"]), 3, size, size), dtype=np.uint8)
    errors = [""] * len(images)
    for i, source in enumerate(batch["source"]):
        try:
            if isinstance(source, dict) and source.get("bytes"):
                name = source.get("path") or "an embedded image"
                image = open_image(io.BytesIO(source["bytes"]), name=name)
            else:
                image = open_image(source["path"] if isinstance(source, dict) else source)
            pixels = pil_to_uint8(image, 3, size)
        except ZooError as error:
            errors[i] = str(error)
            continue
        images[i] = resize_uint8(pixels[None], size)[0].numpy()
    return {"image": images, "error": errors}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-")[:60]
