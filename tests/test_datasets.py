"""The datasets, read from tiny files in their real formats: MNIST IDX (raw and gzipped), CIFAR
pickle batches, ImageFolder trees; and every bad input a clear error."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from PIL import Image

from tests.datafiles import (
    write_cifar10,
    write_cifar100,
    write_image_folder,
    write_mnist,
)
from zoo.data.sources import load_dataset
from zoo.errors import ZooError
from zoo.weights import read_meta


def test_zoo_datasets_lists_every_dataset(zoo_cli):
    result = zoo_cli("datasets --json")
    rows = {row["name"]: row for row in json.loads(result.out)["datasets"]}
    names = {"digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "folder:PATH", "hf:PATH"}
    assert set(rows) == names
    assert not rows["digits"]["flip"] and not rows["mnist"]["flip"] and rows["cifar10"]["flip"]
    assert "folder:PATH" in zoo_cli("datasets").out


def test_limit_is_a_stratified_deterministic_subset(registry):
    _, data = load_dataset(registry, "digits", 8)
    small = data.limit(100)
    assert len(small.train_labels) == 100 and torch.equal(small.test_labels, data.test_labels)
    assert small.train_labels.bincount().tolist() == [10] * 10
    assert torch.equal(small.train_images, data.limit(100).train_images)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files_train_lenet(zoo_cli, tmp_path, gz):
    write_mnist(tmp_path / "data", gz=gz)
    result = zoo_cli(
        f"train lenet -d mnist --data-dir {tmp_path / 'data'} --epochs 12 --batch-size 16 "
        f"--out {tmp_path} -q"
    )
    assert result.code == 0, result.err
    meta = read_meta(tmp_path / "lenet-mnist.safetensors")
    assert meta["dataset"] == "mnist" and meta["classes"][0] == "0 - zero"
    metrics = meta["metrics"]  # 10% of the training split is held out (for the temperature)
    assert metrics["train_images"] + metrics["held_out_images"] == 80
    assert metrics["held_out_images"] == 8 and metrics["test_images"] == 30
    assert meta["metrics"]["test_accuracy"] >= 0.8


def test_fashion_mnist_reads_its_own_folder(registry, tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST", train=20, test=10, gz=False)
    _, data = load_dataset(registry, "fashion-mnist", 28, tmp_path)
    assert data.classes[0] == "T-shirt/top" and data.train_images.shape == (20, 1, 28, 28)
    assert data.train_images.dtype == torch.uint8


def test_cifar10_pickle_batches_train_cifar_cnn(zoo_cli, tmp_path):
    write_cifar10(tmp_path / "data")
    result = zoo_cli(
        f"train cifar-cnn -d cifar10 --data-dir {tmp_path / 'data'} --epochs 10 --batch-size 10 "
        f"--augment --out {tmp_path} -q"
    )
    assert result.code == 0, result.err
    meta = read_meta(tmp_path / "cifar-cnn-cifar10.safetensors")
    assert meta["classes"][:2] == ["airplane", "automobile"] and meta["settings"]["augment"]
    metrics = meta["metrics"]
    assert metrics["train_images"] + metrics["held_out_images"] == 100
    assert metrics["test_accuracy"] >= 0.5


def test_cifar100_uses_the_fine_labels(registry, tmp_path):
    write_cifar100(tmp_path)
    _, data = load_dataset(registry, "cifar100", 32, tmp_path)
    assert len(data.classes) == 100 and data.train_images.shape == (200, 3, 32, 32)
    assert data.train_labels.tolist()[:3] == [0, 1, 2] and int(data.test_labels.max()) == 99


def test_cifar_pickle_with_code_is_refused_not_run(registry, tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(ZooError, match=r"data_batch_3: not a CIFAR pickle batch .*refusing"):
        load_dataset(registry, "cifar10", 32, tmp_path)
    assert not marker.exists()


def test_missing_data_without_download_is_one_clear_error(zoo_cli, tmp_path):
    for dataset in ("mnist", "cifar10"):
        result = zoo_cli(f"train lenet -d {dataset} --data-dir {tmp_path} --out {tmp_path} -q")
        assert result.code == 1 and result.err.count("\n") == 1, result.err
        assert f"{dataset.upper()} not found" in result.err and "--download" in result.err
    assert list(tmp_path.iterdir()) == []


def test_unknown_dataset_suggests_close_names(zoo_cli, tmp_path):
    result = zoo_cli(f"train lenet -d cifar-10 --out {tmp_path}")
    assert result.code == 1 and "unknown dataset 'cifar-10'; did you mean 'cifar10'" in result.err


def test_image_folder_with_train_and_val(registry, tmp_path):
    write_image_folder(tmp_path / "train", ["cat", "dog", "eel"], per_class=6)
    write_image_folder(tmp_path / "val", ["cat", "dog", "eel"], per_class=2, seed=5)
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image, not counted")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) in .*train.*broken"):
        _, data = load_dataset(registry, f"folder:{tmp_path}", 24, workers=2)
    assert data.classes == ["cat", "dog", "eel"]
    assert data.train_images.shape == (18, 3, 24, 24) and data.test_images.shape == (6, 3, 24, 24)
    assert data.test_labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_image_folder_split_deterministically_and_trained(zoo_cli, tmp_path):
    write_image_folder(tmp_path / "pics", ["a", "b"], per_class=10)
    # Equal bit for bit only at equal threads and memory format (both timed when not given).
    args = f"train cifar-cnn -d folder:{tmp_path / 'pics'} --epochs 6 --batch-size 4 -q"
    args += " --threads 1 --channels-last"
    for run in ("one", "two"):
        result = zoo_cli(f"{args} --out {tmp_path} --run-name {run} --workers 0")
        assert result.code == 0, result.err
    one, two = (read_meta(tmp_path / f"{run}.safetensors") for run in ("one", "two"))
    assert one["classes"] == ["a", "b"] and one["metrics"]["test_images"] == 4
    assert one["metrics"] == two["metrics"] and one["metrics"]["test_accuracy"] >= 0.75


def test_image_folder_with_one_class_or_none_readable_is_an_error(registry, tmp_path):
    write_image_folder(tmp_path / "one", ["only"], per_class=3)
    with pytest.raises(ZooError, match=r"one subfolder per class, at least 2 \(only 'only'\)"):
        load_dataset(registry, f"folder:{tmp_path / 'one'}", 16)
    for name in ("x", "y"):
        (tmp_path / "bad" / name).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "bad" / name / "ok.png")
        (tmp_path / "bad" / name / "ok.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(UserWarning, match="skipped 2"), pytest.raises(ZooError, match="no readable"):
        load_dataset(registry, f"folder:{tmp_path / 'bad'}", 16)
    with pytest.raises(ZooError, match="does not exist"):
        load_dataset(registry, f"folder:{tmp_path / 'nowhere'}", 16)


def test_cifar_meta_without_label_names_is_one_line(zoo_cli, tmp_path):
    write_cifar10(tmp_path)
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({"num_cases_per_batch": 20}))
    result = zoo_cli(f"train lenet -d cifar10 --data-dir {tmp_path} --out {tmp_path / 'w'} -q")
    assert result.code == 1 and result.err.count("\n") == 1
    assert result.err == f"error: {meta}: not a CIFAR meta file (no 'label_names' list)\n"
