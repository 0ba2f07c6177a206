"""benchmarks/bench_peers.py's data: Debian's Fashion-MNIST unpacked into torchvision's layout,
which torchvision's FashionMNIST (the seed loop's and timm's reader) reads as zoo reads Debian's
files: the same images and labels, 60,000/10,000, or the first N training images with --limit."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torchvision import datasets

from zoo.data.sources import load_dataset

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_peers.py"
DEBIAN = Path("/usr/share/datasets/fashion-mnist")

pytestmark = pytest.mark.skipif(
    not (DEBIAN / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason="no Debian dataset-fashion-mnist: run scripts/install-debian-packages.sh",
)


def bench_peers():
    spec = importlib.util.spec_from_file_location("bench_peers", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_torchvision_reads_the_prepared_folder_as_zoo_reads_debians(registry, tmp_path):
    assert bench_peers().prepare_data(tmp_path) == 60_000
    train = datasets.FashionMNIST(tmp_path, train=True)
    test = datasets.FashionMNIST(tmp_path, train=False)
    _, zoo = load_dataset(registry, "fashion-mnist", 28)
    assert len(train) == 60_000 and len(test) == 10_000
    assert torch.equal(train.data, zoo.train_images[:, 0]) and torch.equal(
        train.targets, zoo.train_labels
    )
    assert torch.equal(test.data, zoo.test_images[:, 0]) and torch.equal(
        test.targets, zoo.test_labels
    )
    assert train.classes == zoo.classes


def test_limit_keeps_the_first_training_images_and_every_test_image(registry, tmp_path):
    assert bench_peers().prepare_data(tmp_path, limit=600) == 600
    train = datasets.FashionMNIST(tmp_path, train=True)
    _, zoo = load_dataset(registry, "fashion-mnist", 28)
    assert torch.equal(train.data, zoo.train_images[:600, 0])
    assert torch.equal(train.targets, zoo.train_labels[:600])
    assert len(datasets.FashionMNIST(tmp_path, train=False)) == 10_000


def test_weights_metrics_reads_the_header_as_zoo_does(lenet_weights):
    from zoo.weights import read_meta

    assert bench_peers().weights_metrics(lenet_weights) == read_meta(lenet_weights)["metrics"]


def test_the_tree_pss_counts_a_child_process(tmp_path):
    """A child holding 200 MB of its own adds them to its parent's tree (as a DataLoader
    worker's memory is added to its run's)."""
    import os
    import subprocess
    import time

    bench = bench_peers()
    ready = tmp_path / "ready"
    before = bench.tree_pss_mb(os.getpid())
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib\n"
            "block = bytearray(200 * 2**20)\n"
            "pathlib.Path(sys.argv[1]).touch()\n"
            "time.sleep(60)\n",
            str(ready),
        ]
    )
    try:
        while not ready.exists():
            assert child.poll() is None
            time.sleep(0.05)
        assert bench.tree_pss_mb(os.getpid()) - before >= 200
    finally:
        child.kill()
        child.wait()
