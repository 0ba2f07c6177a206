"""Shared fixtures: the real registry, a real trained LeNet, and the CLI run in-process."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from zoo.registry import get_registry

ROOT = Path(__file__).resolve().parent.parent
# Hugging Face `datasets` never reaches the network in tests (read when it is first imported).
os.environ["HF_DATASETS_OFFLINE"] = os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _cache_in_tmp(tmp_path_factory):
    """zoo's cache (the timm catalog) lives under pytest's temporary folder, not in ~/.cache;
    subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_CACHE", str(tmp_path_factory.mktemp("zoo-cache")))
        yield


@pytest.fixture(autouse=True)
def _no_plugin_path(monkeypatch):
    """Tests see only the plugins they ask for, whatever allow-list the shell has."""
    monkeypatch.delenv("ZOO_PLUGINS_PATH", raising=False)
    monkeypatch.delenv("ZOO_LOAD_PLUGINS", raising=False)


@pytest.fixture(autouse=True)
def _runs_in_tmp(monkeypatch, tmp_path_factory):
    """`zoo train` writes its run folders under pytest's temporary folder, not the cwd."""
    monkeypatch.setenv("ZOO_RUNS_DIR", str(tmp_path_factory.getbasetemp() / "runs"))


@pytest.fixture(autouse=True)
def _data_in_tmp(monkeypatch, tmp_path_factory):
    """Datasets and their prepared cache live under pytest's temporary folder."""
    monkeypatch.setenv("ZOO_DATA", str(tmp_path_factory.getbasetemp() / "data"))


@pytest.fixture(scope="session")
def registry():
    return get_registry()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def zoo_cli(capsys, monkeypatch):
    """Run `zoo ARGS` as the console script does (its `run`), in this process."""
    from zoo.cli import run as zoo

    def run(args: str | list[str]) -> CliResult:
        argv = shlex.split(args) if isinstance(args, str) else list(args)
        monkeypatch.setattr(sys, "argv", ["zoo", *argv])
        capsys.readouterr()
        try:
            zoo()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def lenet_weights(tmp_path_factory) -> Path:
    """A LeNet really trained on digits (few epochs), shared by the tests that need weights."""
    from zoo.training.config import TrainConfig
    from zoo.training.loop import train

    registry = get_registry()
    spec = registry.model("lenet")
    path = tmp_path_factory.mktemp("weights") / "lenet-digits.safetensors"
    train(registry, spec, TrainConfig.for_model(spec, epochs=3), path, progress=False)
    return path


@pytest.fixture(scope="session")
def sample_photos(tmp_path_factory) -> Path:
    """scikit-learn's two real colour photographs as JPEG files."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder = tmp_path_factory.mktemp("photos")
    photos = load_sample_images()
    for name, pixels in zip(photos.filenames, photos.images, strict=True):
        Image.fromarray(pixels).save(folder / Path(name).name)
    return folder


DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def fashion_mnist_copy(tmp_path) -> Path:
    """Debian's four Fashion-MNIST files copied flat into a folder nobody may write to."""
    import shutil

    from zoo.data.locate import IDX_FILES

    if not (DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("no Debian dataset-fashion-mnist: run scripts/install-debian-packages.sh")
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in IDX_FILES:
        shutil.copy(DEBIAN_FASHION_MNIST / f"{name}.gz", folder)
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.fixture(scope="session")
def fashion_weights(tmp_path_factory) -> Path:
    """A LeNet really trained on 10,000 of Debian's Fashion-MNIST garments, 3 epochs."""
    from zoo.training.config import TrainConfig
    from zoo.training.loop import train

    if not (DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("no Debian dataset-fashion-mnist: run scripts/install-debian-packages.sh")
    registry = get_registry()
    spec = registry.model("lenet")
    config = TrainConfig.for_model(
        spec, dataset="fashion-mnist", limit=10_000, epochs=3, batch_size=128
    )
    path = tmp_path_factory.mktemp("weights") / "lenet-fashion-mnist.safetensors"
    train(registry, spec, config, path, progress=False)
    return path


@dataclass
class DemoServer:
    url: str
    weights_dir: Path
    examples_dir: Path
    torch_home: Path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A TCP port free on 127.0.0.1."""
    return _free_port()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory, lenet_weights, registry):
    """The demo app served in-process on a free port: a trained LeNet, a corrupt weights file,
    one whose plugin is missing, and torchvision's ResNet18 file in a private torch cache."""
    import shutil

    import torch
    import torchvision

    from zoo import weights
    from zoo.demo.app import build_app, serve
    from zoo.demo.examples import Examples
    from zoo.demo.shelf import WeightsShelf

    root = tmp_path_factory.mktemp("demo")
    weights_dir = root / "weights"
    weights_dir.mkdir()
    shutil.copy(lenet_weights, weights_dir / lenet_weights.name)
    (weights_dir / "corrupt.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{trunc")
    meta = {
        "model": "acme/unicorn",
        "plugin": "acme-zoo-models",
        "classes": ["a", "b"],
        "input": {"channels": 1, "size": 8, "mean": [0.5], "std": [0.5]},
    }
    weights.save(weights_dir / "unicorn.safetensors", torch.nn.Linear(64, 2), meta)
    torch_home = root / "torch"
    checkpoint = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    checkpoint.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), checkpoint)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(torch_home))
        examples = tmp_path_factory.getbasetemp() / "demo-examples"  # written once a session
        app = build_app(WeightsShelf(registry, weights_dir), examples_dir=examples)
        Examples(registry, examples).of_model(weights.read_meta(lenet_weights))  # as a page would
        port = _free_port()
        serve(app, port=port, prevent_thread_lock=True)
        try:
            yield DemoServer(f"http://127.0.0.1:{port}/", weights_dir, examples, torch_home)
        finally:
            app.close()


CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (its own browser download is not used)."""
    if not CHROMIUM.is_file():
        pytest.skip("no /usr/bin/chromium: run scripts/install-debian-packages.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()
