"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 in the files torchvision downloads.

`--download` fetches them with torchvision's own code (checksums verified); otherwise they are
read from `--data-dir`, where files the user placed there need not match torchvision's
checksums. CIFAR's python batches are pickles: they are read with an unpickler that builds only
numpy arrays, lists and strings, never arbitrary objects.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from zoo.data.splits import ImageSplits
from zoo.errors import ZooError
from zoo.util.files import atomic_write


def load_mnist(root: Path, download: bool = False, **_) -> ImageSplits:
    """MNIST from `root`/MNIST/raw (IDX files, raw or gzipped)."""
    return _load_idx("MNIST", root, download)


def load_fashion_mnist(root: Path, download: bool = False, **_) -> ImageSplits:
    """Fashion-MNIST from `root`/FashionMNIST/raw (IDX files, raw or gzipped)."""
    return _load_idx("FashionMNIST", root, download)


def load_cifar10(root: Path, download: bool = False, **_) -> ImageSplits:
    """CIFAR-10 from `root`/cifar-10-batches-py (python pickle batches)."""
    return _load_cifar("CIFAR10", root, download)


def load_cifar100(root: Path, download: bool = False, **_) -> ImageSplits:
    """CIFAR-100 (fine labels) from `root`/cifar-100-python (python pickle batches)."""
    return _load_cifar("CIFAR100", root, download)


def _missing(folder: Path, names: list[str]) -> list[str]:
    return [name for name in names if not (folder / name).is_file()]


def _not_found(name: str, folder: Path, missing: list[str]) -> ZooError:
    return ZooError(
        f"{name} not found: {folder} lacks {', '.join(missing)}; add --download (online) or "
        "--data-dir DIR where the files are"
    )


def _download(name: str, fetch) -> None:
    try:
        fetch()
    except Exception as error:  # urllib, http and checksum errors alike
        cause = " ".join(str(error).split())  # torchvision's own message spans lines
        raise ZooError(f"cannot download {name} ({type(error).__name__}: {cause})") from None


def _load_idx(kind: str, root: Path, download: bool) -> ImageSplits:
    from torchvision import datasets

    cls = getattr(datasets, kind)
    folder = Path(root) / kind / "raw"
    archives = [url.rsplit("/", 1)[-1] for url, _ in cls.resources]
    files = [name.removesuffix(".gz") for name in archives]
    for archive, file in zip(archives, files, strict=True):
        if not (folder / file).is_file() and (folder / archive).is_file():
            _gunzip(folder / archive, folder / file)
    missing = _missing(folder, files)
    if missing and download:
        _download(kind, lambda: cls(str(root), train=True, download=True))
    elif missing:
        raise _not_found(kind, folder, missing)
    try:
        train, test = (cls(str(root), train=split, download=False) for split in (True, False))
    except Exception as error:  # torchvision's own checks of the IDX headers
        raise ZooError(f"cannot read {kind} from {folder} ({error})") from None
    return ImageSplits(
        list(train.classes),
        train.data.unsqueeze(1).contiguous(),
        train.targets.long(),
        test.data.unsqueeze(1).contiguous(),
        test.targets.long(),
    )


def _gunzip(archive: Path, target: Path) -> None:
    def write(tmp: str) -> None:
        with gzip.open(archive, "rb") as source, open(tmp, "wb") as sink:
            shutil.copyfileobj(source, sink)

    try:
        atomic_write(target, write)
    except (OSError, EOFError) as error:
        raise ZooError(f"cannot decompress {archive} ({error})") from None


def _load_cifar(kind: str, root: Path, download: bool) -> ImageSplits:
    from torchvision import datasets
    from torchvision.datasets.utils import download_and_extract_archive

    cls = getattr(datasets, kind)
    folder = Path(root) / cls.base_folder
    train_files = [name for name, _ in cls.train_list]
    test_files = [name for name, _ in cls.test_list]
    missing = _missing(folder, [*train_files, *test_files, cls.meta["filename"]])
    if missing and download:
        _download(
            kind,
            lambda: download_and_extract_archive(
                cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5
            ),
        )
    elif missing:
        raise _not_found(kind, folder, missing)
    classes = _cifar_classes(folder / cls.meta["filename"], cls.meta["key"])
    train_images, train_labels = _cifar_batches(folder, train_files)
    test_images, test_labels = _cifar_batches(folder, test_files)
    return ImageSplits(classes, train_images, train_labels, test_images, test_labels)


def _cifar_classes(path: Path, key: str) -> list[str]:
    """The class names in a CIFAR meta file (`batches.meta` or `meta`)."""
    meta = _unpickle(path)
    names = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(names, list | tuple) or not names:
        raise ZooError(f"{path}: not a CIFAR meta file (no {key!r} list)")
    return [str(name) for name in names]


def _cifar_batches(folder: Path, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, 32, 32) images and int64 labels from CIFAR pickle batches."""
    images, labels = [], []
    for name in names:
        entry = _unpickle(folder / name)
        try:
            images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
        except (KeyError, ValueError) as error:
            raise ZooError(f"{folder / name}: not a CIFAR batch ({error})") from None
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain Python values, and nothing else."""

    ALLOWED: ClassVar = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            entry = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ZooError(f"{path}: not a CIFAR pickle batch ({error})") from None
    if not isinstance(entry, dict):
        raise ZooError(f"{path}: not a CIFAR pickle batch (a {type(entry).__name__})")
    return entry
