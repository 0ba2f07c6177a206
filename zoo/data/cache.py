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
MAX_SIZE = 4096  # the largest stored image side a manifest may claim
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
    """The finished caches under `root`: their manifests, folders and bytes on disk (a damaged
    manifest says so, for the next run to prepare it again)."""
    from zoo.util.files import read_json

    entries = []
    for path in sorted(Path(root).glob("*/" + MANIFEST)):
        try:
            manifest = read_json(path, 16_000_000)
            if not isinstance(manifest, dict):
                raise ValueError("not an object")
        except (OSError, ValueError, RecursionError):
            manifest = {"dataset": f"{path.parent.name} (damaged: its next use prepares it)"}
        size = sum(f.lstat().st_size for f in path.parent.iterdir())
        entries.append({**manifest, "folder": str(path.parent), "bytes": size})
    return entries


def set_aside(folder: Path) -> None:
    """Move a damaged cache folder out of the way (a process that maps its files keeps
    them) and delete it; a folder another process already moved is left to it."""
    aside = folder.parent / f".{folder.name}.{os.getpid()}.damaged"
    try:
        folder.rename(aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def remove_dead_partials(root: Path) -> None:
    """Delete the `.partial` folders that processes no longer alive left under `root`
    (`build_cache` names its own after its pid)."""
    for partial in Path(root).glob(".*.partial"):
        pid = partial.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


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
    remove_dead_partials(root)
    if (folder / MANIFEST).is_file():
        return folder
    import datasets

    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".{folder.name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.perf_counter()
    try:
        with progress_bars(progress), workers_die_with_this_process():
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


_PARENT: list[int] = []  # the process whose decoding workers are being forked


@contextmanager
def workers_die_with_this_process() -> Iterator[None]:
    """While the block runs, every process forked from this one (`Dataset.map`'s decoding
    workers) asks the kernel to kill it when its parent dies (PR_SET_PDEATHSIG), so a
    `kill -9` of `zoo` leaves no worker behind."""
    _PARENT.append(os.getpid())
    try:
        yield
    finally:
        _PARENT.remove(os.getpid())


def _after_fork_in_child() -> None:
    if not _PARENT or sys.platform != "linux":
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != _PARENT[-1]:  # the parent died before the request was made
        os._exit(1)
    _PARENT[-1] = os.getpid()  # what this process forks in turn dies with it


PR_SET_PDEATHSIG = 1
os.register_at_fork(after_in_child=_after_fork_in_child)


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
