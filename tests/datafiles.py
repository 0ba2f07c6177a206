"""Tiny datasets written in the real on-disk formats: MNIST IDX files, CIFAR python pickle
batches and ImageFolder trees. Class c is a bright square at a place of its own on a noisy dark
background, so a model really learns them."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def pattern_images(labels: np.ndarray, size: int, channels: int, seed: int) -> np.ndarray:
    """uint8 (N, size, size, channels): class c lights a square at its own grid cell."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (len(labels), size, size, channels), dtype=np.uint8)
    cell = size // 4
    for i, label in enumerate(labels):
        row, col = divmod(int(label) % 16, 4)
        images[i, row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = 230
    return images


def _labels(n: int, classes: int) -> np.ndarray:
    return np.arange(n) % classes


def _idx(data: np.ndarray) -> bytes:
    """The IDX format: magic (0, 0, type 0x08 = ubyte, dims), big-endian sizes, the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, data.ndim)
    return header + struct.pack(f">{data.ndim}I", *data.shape) + data.astype(np.uint8).tobytes()


def write_mnist(
    root: Path, folder: str = "MNIST", train: int = 80, test: int = 30, gz: bool = True
) -> Path:
    """root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz], 28x28, 10 classes."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", train, 1), ("t10k", test, 2)):
        labels = _labels(n, 10)
        images = pattern_images(labels, 28, 1, seed)[..., 0]
        for name, data in (
            (f"{prefix}-images-idx3-ubyte", images),
            (f"{prefix}-labels-idx1-ubyte", labels),
        ):
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(_idx(data)))
            else:
                (raw / name).write_bytes(_idx(data))
    return root


def _pickle(path: Path, entry: dict) -> None:
    path.write_bytes(pickle.dumps(entry, protocol=2))


def _cifar_entry(labels: np.ndarray, seed: int, key: str) -> dict:
    images = pattern_images(labels, 32, 3, seed)  # HWC -> CIFAR's rows of R, G, B planes
    data = images.transpose(0, 3, 1, 2).reshape(len(labels), 3 * 32 * 32)
    return {"batch_label": "tiny", key: labels.tolist(), "data": data, "filenames": []}


def write_cifar10(root: Path, per_batch: int = 20, test: int = 30) -> Path:
    """root/cifar-10-batches-py/: data_batch_1..5, test_batch, batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        _pickle(folder / f"data_batch_{i}", _cifar_entry(_labels(per_batch, 10), i, "labels"))
    _pickle(folder / "test_batch", _cifar_entry(_labels(test, 10), 9, "labels"))
    names = ["airplane", "automobile", "bird", "cat", "deer"]
    names += ["dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": per_batch})
    return root


def write_cifar100(root: Path, train: int = 200, test: int = 100) -> Path:
    """root/cifar-100-python/: train, test and meta with fine labels."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    _pickle(folder / "train", _cifar_entry(_labels(train, 100), 1, "fine_labels"))
    _pickle(folder / "test", _cifar_entry(_labels(test, 100), 2, "fine_labels"))
    fine = [f"class{i:02d}" for i in range(100)]
    _pickle(folder / "meta", {"fine_label_names": fine, "coarse_label_names": []})
    return root


def write_image_folder(folder: Path, classes: list[str], per_class: int, seed: int = 0) -> Path:
    """folder/<class>/<i>.png (and a .jpg of another size and mode now and then)."""
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        images = pattern_images(np.full(per_class, c), 40, 3, seed + c)
        for i, array in enumerate(images):
            image = Image.fromarray(array)
            if i % 3 == 2:
                image.convert("L").resize((60, 48)).save(folder / name / f"{i}.jpg")
            else:
                image.save(folder / name / f"{i}.png")
    return folder
