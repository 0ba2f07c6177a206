"""The built-in models: their forward passes, and their architectures against the seed tutorials."""

from __future__ import annotations

import time

import pytest
import torch

from zoo.errors import ZooError
from zoo.trust.introspect import autograd_graph, forward_loss, parameter_shapes

# Seed 001, `print(net)` (the tutorial's class is called Net; ours is LeNet).
LENET_TREE = """\
  (conv1): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
  (conv2): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
  (fc1): Linear(in_features=400, out_features=120, bias=True)
  (fc2): Linear(in_features=120, out_features=84, bias=True)
  (fc3): Linear(in_features=84, out_features=10, bias=True)
)"""

# Seed 001, the shapes of `list(net.parameters())`.
LENET_SHAPES = [
    (6, 1, 5, 5),
    (6,),
    (16, 6, 5, 5),
    (16,),
    (120, 400),
    (120,),
    (84, 120),
    (84,),
    (10, 84),
    (10,),
]

# Seed 000's CIFAR-10 network, as `print(Net())` shows it.
CIFAR_TREE = """\
  (conv1): Conv2d(3, 6, kernel_size=(5, 5), stride=(1, 1))
  (pool): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (conv2): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
  (fc1): Linear(in_features=400, out_features=120, bias=True)
  (fc2): Linear(in_features=120, out_features=84, bias=True)
  (fc3): Linear(in_features=84, out_features=10, bias=True)
)"""

# Seed 002, the end of the second `print(model)`: after the transfer-learning changes.
VGG16_TAIL = """\
  (avgpool): AdaptiveAvgPool2d(output_size=(3, 3))
  (classifier): Sequential(
    (0): Linear(in_features=4608, out_features=512, bias=True)
    (1): ReLU()
    (2): Linear(in_features=512, out_features=128, bias=True)
    (3): ReLU()
    (4): Linear(in_features=128, out_features=10, bias=True)
  )
)"""


def build(registry, name: str, num_classes: int = 10) -> torch.nn.Module:
    return registry.build(registry.model(name), num_classes=num_classes)


@pytest.mark.parametrize(
    ("name", "num_classes"),
    [("lenet", 10), ("cifar-cnn", 7), ("resnet18", 5), ("vgg16", 3), ("timm/resnet18", 4)],
)
def test_forward_pass_has_one_logit_per_class(registry, name, num_classes):
    spec = registry.model(name)
    model = build(registry, name, num_classes).eval()
    size = min(spec.input.size, 64)
    with torch.inference_mode():
        logits = model(torch.randn(2, spec.input.channels, size, size))
    assert logits.shape == (2, num_classes)


def test_lenet_matches_seed_001(registry):
    model = build(registry, "lenet")
    head, body = str(model).split("\n", 1)
    assert head == "LeNet(" and body == LENET_TREE
    assert [shape for _, shape in parameter_shapes(model)] == LENET_SHAPES


def test_lenet_autograd_graph_walks_like_the_seed(registry):
    model = build(registry, "lenet")
    lines = autograd_graph(forward_loss(model, registry.model("lenet").input))
    # loss.grad_fn, then the Linear (addmm), as the seed prints them
    assert lines[0] == "MseLossBackward0" and lines[1].strip() == "AddmmBackward0"
    assert sum("ConvolutionBackward0" in line for line in lines) == 2
    assert sum(line.strip().startswith("AccumulateGrad") for line in lines) == 10


def test_cifar_cnn_matches_seed_000(registry):
    assert str(build(registry, "cifar-cnn")).split("\n", 1)[1] == CIFAR_TREE


def test_vgg16_matches_seed_002(registry):
    tree = str(build(registry, "vgg16"))
    assert tree.startswith("VGG(\n  (features): Sequential(\n    (0): Conv2d(3, 64")
    assert tree.endswith(VGG16_TAIL)
    assert "(30): MaxPool2d" in tree


def test_resnet18_head_is_a_new_linear_with_torchvision_keys(registry):
    model = build(registry, "resnet18", num_classes=10)
    assert str(model.fc) == "Linear(in_features=512, out_features=10, bias=True)"
    import torchvision

    reference = torchvision.models.resnet18().state_dict()
    assert set(model.state_dict()) == set(reference)


def test_resnet18_pretrained_loads_torchvision_cache_then_replaces_head(
    registry, tmp_path, monkeypatch
):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    imagenet = torchvision.models.resnet18()
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(imagenet.state_dict(), checkpoints / "resnet18-f37072fd.pth")

    model = registry.build(registry.model("resnet18"), num_classes=10, pretrained=True)
    assert torch.equal(model.conv1.weight, imagenet.conv1.weight)
    assert model.fc.out_features == 10
    full = registry.build(registry.model("resnet18"), num_classes=1000, pretrained=True)
    assert torch.equal(full.fc.weight, imagenet.fc.weight)


def test_missing_pretrained_weights_offline_is_one_clear_error(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    started = time.monotonic()
    with pytest.raises(ZooError, match=r"no pretrained weights for vgg16 here") as error:
        registry.build(registry.model("vgg16"), num_classes=10, pretrained=True)
    assert f"vgg16-397923af.pth, or that file placed in {tmp_path}/hub/checkpoints" in str(
        error.value
    )
    assert time.monotonic() - started < 10  # the host probed once, no download retried


def test_model_without_weights_refuses_pretrained(registry):
    with pytest.raises(ZooError, match="has no pretrained weights"):
        registry.build(registry.model("lenet"), num_classes=10, pretrained=True)


def test_timm_spec_comes_from_pretrained_config(registry):
    spec = registry.model("timm/resnet50")
    assert (spec.input.channels, spec.input.size) == (3, 224)
    assert spec.input.mean == (0.485, 0.456, 0.406)
    assert spec.head == "fc" and spec.pretrained and spec.listed
    assert not registry.model("timm/resnet101").listed
