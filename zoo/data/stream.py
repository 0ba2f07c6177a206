"""Images read a batch at a time from the memory-mapped cache, and the batches of a run.

`MappedImages` stands where an in-memory uint8 tensor would: it has a length and a shape and
selecting rows (`images[index]`) gives another view, but pixels are only read by `read`, a
batch at a time. Every process maps the same Arrow files, so the operating system keeps one
copy in its page cache; the pages a batch touched are handed back after it is read, so a
process's memory does not grow with the number of images.
"""

from __future__ import annotations

import mmap
import os
import queue
import stat
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from zoo.data.cache import MANIFEST, MAX_SIZE, data_dir, dataset_cache_dir, set_aside
from zoo.data.splits import ImageSplits, split_train_test
from zoo.errors import ZooError
from zoo.util.files import read_json

PREFETCH = 2  # batches read ahead
MAX_MANIFEST_BYTES = 16_000_000


class MappedImages:
    """uint8 images (N, 3, S, S), rows of memory-mapped Arrow record batches."""

    def __init__(self, chunks: list[np.ndarray], maps: list[mmap.mmap], rows: np.ndarray) -> None:
        self.chunks, self.maps, self.rows = chunks, maps, rows
        self.starts = np.cumsum([0] + [len(c) for c in chunks])

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.chunks[0].shape[1:])

    def __getitem__(self, index) -> MappedImages:
        """The images at `index` (a slice, or a tensor or array of positions), still unread."""
        rows = self.rows[index if isinstance(index, slice) else np.asarray(index)]
        return MappedImages(self.chunks, self.maps, rows)

    def read(self, index=None) -> torch.Tensor:
        """The images at `index` (default: all) as one uint8 tensor."""
        rows = self.rows if index is None else self.rows[np.asarray(index)]
        chunk = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        local = rows - self.starts[chunk]
        for i, (c, row) in enumerate(zip(chunk.tolist(), local.tolist(), strict=True)):
            out[i] = self.chunks[c][row]
        if hasattr(mmap, "MADV_DONTNEED"):  # the page cache keeps them; this process lets go
            for mapped in self.maps:
                mapped.madvise(mmap.MADV_DONTNEED)
        return torch.from_numpy(out)


def open_table(
    files: list[Path], shape: tuple[int, ...], columns: list[str]
) -> tuple[MappedImages, dict[str, list]]:
    """The "image" column of Arrow stream files, images of `shape`, memory-mapped; the other
    `columns` read into lists."""
    import pyarrow as pa

    chunks, maps, values = [], [], {name: [] for name in columns}
    for path in files:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        maps.append(mapped)
        table = pa.ipc.open_stream(pa.py_buffer(mapped)).read_all()
        for array in table.column("image").chunks:
            chunks.append(_flat_values(array).reshape(len(array), *shape))
        for name in columns:
            values[name].extend(table.column(name).to_pylist())
    return MappedImages(chunks, maps, np.arange(sum(len(c) for c in chunks))), values


def _flat_values(array) -> np.ndarray:
    """The uint8 values of an Array3D column chunk (Hugging Face's nested lists), no copy."""
    import pyarrow as pa

    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    while pa.types.is_list(storage.type) or pa.types.is_fixed_size_list(storage.type):
        storage = storage.flatten()
    return storage.to_numpy(zero_copy_only=True)


def pixels(images) -> torch.Tensor:
    """Images as one uint8 tensor: in-memory ones as they are, mapped ones read."""
    return images if isinstance(images, torch.Tensor) else images.read()


def resident(images, device: torch.device):
    """In-memory images moved to `device`; mapped ones stay where they are."""
    return images.to(device) if isinstance(images, torch.Tensor) else images


def batches(
    images, order: torch.Tensor, batch_size: int, device: torch.device, start: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`(index, images[index])` on `device` for each batch of `order`, from batch `start`.

    A tensor is indexed where it lies; mapped images are read by a background thread, `PREFETCH`
    batches ahead, into pinned memory when the device is a GPU.
    """
    steps = range(start * batch_size, len(order), batch_size)
    if isinstance(images, torch.Tensor):
        order = order.to(images.device)
        for i in steps:
            index = order[i : i + batch_size]
            yield index.to(device), images[index].to(device, non_blocking=True)
        return
    order = order.cpu()
    ready: queue.Queue = queue.Queue(PREFETCH)
    stop = threading.Event()
    pin = device.type == "cuda"

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for i in steps:
                index = order[i : i + batch_size]
                x = images.read(index)
                if not put((index, x.pin_memory() if pin else x)):
                    return
        except Exception as error:  # handed to the consumer, raised there
            put(error)
            return
        put(None)

    thread = threading.Thread(target=reader, name="zoo-batches", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, Exception):
                raise item
            index, x = item
            yield index.to(device), x.to(device, non_blocking=True)
    finally:
        stop.set()
        thread.join()


class DamagedCache(ZooError):
    """A prepared cache that fails its checks: set aside and prepared again."""


def read_splits(folder: Path, where: str) -> ImageSplits:
    """The train and test splits of a finished cache folder; unreadable images are skipped
    and counted in a warning naming `where`. Nothing in the folder is trusted: a manifest or
    an Arrow file that fails its checks raises DamagedCache."""
    try:
        manifest = _manifest(folder)
        files = [folder / name for name in manifest["files"]]
        for path in files:  # only regular files are mapped: a FIFO would hang the open
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise ValueError(f"{path.name} is not a regular file")
        shape = (3, manifest["size"], manifest["size"])
        images, columns = open_table(files, shape, ["label", "held_out", "error"])
        labels = torch.tensor(columns["label"], dtype=torch.long)
        held_out = np.array(columns["held_out"], dtype=bool)
        if len(images) != manifest["rows"] or len(labels) != len(images):
            raise ValueError(f"{len(images)} rows, not the manifest's {manifest['rows']}")
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(
            manifest["classes"]
        ):
            raise ValueError("labels outside the classes")
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as error:
        why = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        why = why.splitlines()[0] if why else type(error).__name__
        raise DamagedCache(f"the prepared cache {folder} is damaged ({why})") from None
    failures = [error for error in columns["error"] if error]
    if failures:
        warnings.warn(
            f"skipped {len(failures)} unreadable image(s) in {where} (first: {failures[0]})",
            stacklevel=3,
        )
    readable = np.array([not error for error in columns["error"]], dtype=bool)
    classes = manifest["classes"]
    if held_out.any():
        for part, rows in (("training", ~held_out), ("test", held_out)):
            if not (readable & rows).any():
                raise ZooError(f"{where} has no readable {part} images")
        train, test = np.flatnonzero(readable & ~held_out), np.flatnonzero(readable & held_out)
        return ImageSplits(
            classes, images[train], labels[train], images[test], labels[test], photos=True
        )
    if not readable.any():
        raise ZooError(f"{where} has no readable images")
    keep = np.flatnonzero(readable)
    return replace(split_train_test(images[keep], labels[keep], classes), photos=True)


def _manifest(folder: Path) -> dict:
    """A cache's manifest, checked for what `read_splits` uses."""
    manifest = read_json(folder / MANIFEST, MAX_MANIFEST_BYTES)
    if not isinstance(manifest, dict):
        raise ValueError("the manifest is not an object")
    files, size, rows = manifest.get("files"), manifest.get("size"), manifest.get("rows")
    if not isinstance(files, list) or not files:
        raise ValueError("the manifest lists no files")
    if not all(isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in files):
        raise ValueError("the manifest names a file outside its folder")
    if not (isinstance(size, int) and 0 < size <= MAX_SIZE and isinstance(rows, int) and rows >= 0):
        raise ValueError("the manifest's size or rows are not whole numbers in range")
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError("the manifest's classes are not names")
    return manifest


def cached_loader(prepare: Callable[..., Path]) -> Callable[..., ImageSplits]:
    """A `DatasetSpec.load` for a dataset kept in the cache: `prepare(root, size, workers,
    cache_root, augment, progress)` returns its cache folder, whose splits it reads. A cache
    that fails its checks is named in a warning, set aside and prepared again."""

    def load(
        root: Path,
        download: bool = False,
        size: int = 224,
        workers: int = 0,
        cache_root: Path | None = None,
        augment: bool = False,
        progress: bool = False,
        **_,
    ) -> ImageSplits:
        cache_root = cache_root or dataset_cache_dir(data_dir())
        folder = prepare(root, size, workers, cache_root, augment, progress)
        try:
            return read_splits(folder, str(root))
        except DamagedCache as damaged:
            warnings.warn(f"{damaged}: preparing it again", stacklevel=2)
            set_aside(folder)
        folder = prepare(root, size, workers, cache_root, augment, progress)
        return read_splits(folder, str(root))

    load.__doc__ = prepare.__doc__
    return load
