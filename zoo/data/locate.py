"""Where the files of the built-in datasets are, found without reading them (no torch).

MNIST and Fashion-MNIST are four IDX files, raw or gzipped, found flat in a folder (as Zalando
and Debian ship them) or in torchvision's `<Kind>/raw/` below it; with the default data folder,
Fashion-MNIST is also looked for where Debian's `dataset-fashion-mnist` puts it. CIFAR is
torchvision's extracted folder.
"""

from __future__ import annotations

from pathlib import Path

from zoo.data.cache import data_dir

EMBEDDED = "embedded (scikit-learn)"
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# Folders outside the data folder where a system package installs a dataset.
SYSTEM_FOLDERS = {"FashionMNIST": (Path("/usr/share/datasets/fashion-mnist"),)}
CIFAR_FOLDERS = {"CIFAR10": "cifar-10-batches-py", "CIFAR100": "cifar-100-python"}


def idx_file(folder: Path, name: str) -> Path | None:
    """`folder/name`, or `folder/name.gz`, whichever is a file (the raw one first)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def idx_folders(kind: str, root: Path) -> list[Path]:
    """The folders to look for `kind`'s IDX files in, in order: `root` itself, torchvision's
    `root/<kind>/raw`, and, when `root` is the default data folder, the system's folders."""
    root = Path(root)
    folders = [root, root / kind / "raw"]
    if root == data_dir():
        folders += SYSTEM_FOLDERS.get(kind, ())
    return folders


def find_idx(kind: str, root: Path) -> Path | None:
    """The first of `idx_folders` that holds all four IDX files, or None."""
    for folder in idx_folders(kind, root):
        if all(idx_file(folder, name) for name in IDX_FILES):
            return folder
    return None


def idx_locator(kind: str):
    """`locate(root)` for a `DatasetSpec`: the folder `kind`'s files are found in, or None."""

    def locate(root: Path | None = None) -> str | None:
        found = find_idx(kind, data_dir(root))
        return str(found) if found else None

    return locate


def cifar_locator(kind: str):
    """`locate(root)` for a `DatasetSpec`: torchvision's extracted CIFAR folder, or None."""

    def locate(root: Path | None = None) -> str | None:
        folder = data_dir(root) / CIFAR_FOLDERS[kind]
        return str(folder) if folder.is_dir() else None

    return locate
