"""The IDX format of MNIST and Fashion-MNIST, read in memory from raw or gzipped files.

Nothing is written beside the files (a read-only folder such as Debian's serves), and the
header is not trusted: the data must be exactly as long as it says, and no longer than
`MAX_BYTES`, before anything that size is read.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from zoo.errors import ZooError

MAX_BYTES = 1 << 30  # a header promising more than 1 GiB is refused before it is read
_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """The array an IDX file holds (gzipped if its name ends in .gz), or a one-line ZooError."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            return _read(f, path)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise ZooError(f"{path}: cannot read it ({error})") from None


def _read(f, path: Path) -> np.ndarray:
    head = f.read(4)
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _TYPES or not 1 <= head[3] <= 4:
        raise ZooError(f"{path}: not an IDX file (it starts with {head.hex() or 'nothing'})")
    dtype, dims = np.dtype(_TYPES[head[2]]), head[3]
    sizes = f.read(4 * dims)
    if len(sizes) < 4 * dims:
        raise ZooError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{dims}I", sizes)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected > MAX_BYTES:
        raise ZooError(f"{path}: its header claims {expected:,} bytes of data, over the limit")
    data = f.read(expected + 1)
    if len(data) != expected:
        said = f"header says {'x'.join(map(str, shape))}"
        raise ZooError(f"{path}: {len(data):,} bytes of data where its {said} ({expected:,})")
    return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_splits(folder: Path, classes: int) -> tuple[np.ndarray, ...]:
    """Train images, train labels, test images and test labels from the four IDX files in
    `folder` (as `zoo.data.locate` found them): uint8 (N, H, W) images, int64 labels in
    [0, `classes`), as many labels as images."""
    from zoo.data.locate import IDX_FILES, idx_file

    arrays = []
    for name in IDX_FILES:
        path = idx_file(folder, name)
        if path is None:
            raise ZooError(f"{folder} lacks {name}[.gz]")
        arrays.append((path, read_idx(path)))
    for (images_path, images), (labels_path, labels) in (arrays[:2], arrays[2:]):
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ZooError(f"{images_path}: not uint8 images (N, H, W) but {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ZooError(
                f"{labels_path}: {labels.shape} labels for the {len(images)} images of "
                f"{images_path.name}"
            )
        if len(labels) and not 0 <= labels.min() <= labels.max() < classes:
            raise ZooError(f"{labels_path}: labels outside 0..{classes - 1}")
    return tuple(array if array.ndim == 3 else array.astype(np.int64) for _, array in arrays)
