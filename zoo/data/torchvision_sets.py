"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 in the files torchvision downloads.

`--download` fetches them with torchvision's own code (checksums verified); otherwise they are
read from where `zoo.data.locate` finds them (IDX files flat or in torchvision's layout, read in
memory, so a read-only folder such as Debian's serves), where files the user placed need not
match torchvision's checksums. CIFAR's python batches are pickles: they are read with an
unpickler that builds only numpy arrays, lists and strings, never arbitrary objects.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from zoo.data.idx import read_idx_splits
from zoo.data.locate import CIFAR_FOLDERS, IDX_FILES, find_idx, idx_folders
from zoo.data.splits import ImageSplits
from zoo.errors import ZooError

# The class names, as torchvision's datasets have them: Fashion-MNIST's are the dataset's own.
IDX_CLASSES = {
    "MNIST": [
        f"{d} - {n}"
        for d, n in enumerate(
            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        )
    ],
    "FashionMNIST": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


def load_mnist(root: Path, download: bool = False, **_) -> ImageSplits:
    """MNIST's IDX files (raw or gzipped) from `root` or `root`/MNIST/raw."""
    return _load_idx("MNIST", root, download)


def load_fashion_mnist(root: Path, download: bool = False, **_) -> ImageSplits:
    """Fashion-MNIST's IDX files (raw or gzipped) from `root`, `root`/FashionMNIST/raw or,
    with the default data folder, Debian's /usr/share/datasets/fashion-mnist."""
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
    """MNIST or Fashion-MNIST from the first folder of `locate.idx_folders` that holds the
    four files (flat, or torchvision's `<kind>/raw`), read in memory; `download` fetches
    them into `root/<kind>/raw` where none does."""
    folder = find_idx(kind, root)
    if folder is None and download:
        from torchvision import datasets

        _download(kind, lambda: getattr(datasets, kind)(str(root), train=True, download=True))
        folder = find_idx(kind, root)
    if folder is None:
        looked = " or ".join(str(f) for f in idx_folders(kind, root))
        raise ZooError(
            f"{kind} not found: no {', '.join(IDX_FILES)} (raw or .gz) in {looked}; add "
            "--download (online) or --data-dir DIR where the files are"
        )
    train_x, train_y, test_x, test_y = read_idx_splits(folder, len(IDX_CLASSES[kind]))
    return ImageSplits(
        list(IDX_CLASSES[kind]),
        torch.from_numpy(train_x).unsqueeze(1),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x).unsqueeze(1),
        torch.from_numpy(test_y),
        source=str(folder),
    )


def _load_cifar(kind: str, root: Path, download: bool) -> ImageSplits:
    from torchvision import datasets
    from torchvision.datasets.utils import download_and_extract_archive

    cls = getattr(datasets, kind)
    folder = Path(root) / CIFAR_FOLDERS[kind]
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
    return ImageSplits(
        classes, train_images, train_labels, test_images, test_labels, source=str(folder)
    )


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
