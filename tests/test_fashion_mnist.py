"""Fashion-MNIST as Debian ships it (the four IDX .gz files, flat, read-only) and as Zalando
does, found by itself and through --data-dir, read in memory; and IDX headers not trusted."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
from pathlib import Path

import pytest
import torch

from zoo.data.locate import IDX_FILES
from zoo.data.sources import load_dataset
from zoo.errors import ZooError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
CLASSES += ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

pytestmark = pytest.mark.skipif(
    not (DEBIAN / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason="no Debian dataset-fashion-mnist: run scripts/install-debian-packages.sh",
)


def test_found_in_debians_folder_by_itself(registry, zoo_cli):
    """With the default data folder (empty here), Debian's folder is where it is read from, and
    `zoo datasets` says so."""
    _, data = load_dataset(registry, "fashion-mnist", 28)
    assert data.classes == CLASSES and data.source == str(DEBIAN)
    assert data.train_images.shape == (60_000, 1, 28, 28) and data.test_images.shape[0] == 10_000
    assert (
        data.train_images.dtype == torch.uint8
        and data.train_labels.bincount().tolist() == [6000] * 10
    )
    rows = {row["name"]: row for row in json.loads(zoo_cli("datasets --json").out)["datasets"]}
    assert rows["fashion-mnist"]["found"] == str(DEBIAN)
    assert rows["digits"]["found"].startswith("embedded") and rows["cifar10"]["found"] is None
    assert str(DEBIAN) in zoo_cli("datasets").out


def test_a_flat_fashion_mnist_copy_through_data_dir(registry, zoo_cli, fashion_mnist_copy):
    before = sorted(p.name for p in fashion_mnist_copy.iterdir())
    _, data = load_dataset(registry, "fashion-mnist", 28, fashion_mnist_copy)
    assert data.source == str(fashion_mnist_copy) and len(data.train_labels) == 60_000
    assert sorted(p.name for p in fashion_mnist_copy.iterdir()) == before  # nothing unpacked there
    listed = json.loads(zoo_cli(f"datasets --json --data-dir {fashion_mnist_copy}").out)
    found = {row["name"]: row["found"] for row in listed["datasets"]}
    assert found["fashion-mnist"] == str(fashion_mnist_copy)


def test_a_given_data_dir_is_honoured_not_replaced_by_debians(registry, tmp_path):
    with pytest.raises(ZooError, match=r"FashionMNIST not found: .*--data-dir") as error:
        load_dataset(registry, "fashion-mnist", 28, tmp_path)
    assert str(DEBIAN) not in str(error.value)


def _idx_gz(path: Path, header: bytes, data: bytes) -> None:
    path.write_bytes(gzip.compress(header + data))


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        (b"\x00\x00\x08\x03" + struct.pack(">3I", 10, 28, 28), b"\x00" * 100, "bytes of data"),
        (b"PK\x03\x04", b"", "not an IDX file"),
        (b"\x00\x00\x08\x03" + struct.pack(">3I", 1 << 20, 1 << 10, 1 << 10), b"", "the limit"),
        (b"\x00\x00\x08\x03" + struct.pack(">2I", 1, 28), b"", "truncated IDX header"),
    ],
)
def test_an_idx_header_is_not_trusted(registry, tmp_path, header, data, message):
    """A file's header claiming other sizes than its data, or 1 TiB, is one line, read no
    further; nothing is written beside it."""
    for name in IDX_FILES:
        shutil.copy(DEBIAN / f"{name}.gz", tmp_path)
    _idx_gz(tmp_path / "t10k-images-idx3-ubyte.gz", header, data)
    with pytest.raises(ZooError, match=message) as error:
        load_dataset(registry, "fashion-mnist", 28, tmp_path)
    assert "\n" not in str(error.value) and len(list(tmp_path.iterdir())) == 4


def test_labels_that_do_not_match_the_images_are_refused(registry, tmp_path):
    for name in IDX_FILES:
        shutil.copy(DEBIAN / f"{name}.gz", tmp_path)
    labels = bytes(range(10)) * 10 + b"\x0c"  # 101 labels, one of them 12
    _idx_gz(
        tmp_path / "t10k-labels-idx1-ubyte.gz", b"\x00\x00\x08\x01" + struct.pack(">I", 101), labels
    )
    with pytest.raises(ZooError, match=r"\(101,\) labels for the 10000 images"):
        load_dataset(registry, "fashion-mnist", 28, tmp_path)
