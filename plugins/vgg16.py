"""torchvision's VGG16 with the transfer head of the "pretrain and fine-tune" tutorial:
`avgpool` pools to 3x3 and the classifier is 4608 -> 512 -> 128 -> num_classes. Its default
`head` strategy freezes the convolutional features and trains the new classifier alone.
torch and torchvision are imported only when the model is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import zoo

if TYPE_CHECKING:
    from torch import nn

WEIGHTS_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"  # IMAGENET1K_V1's


@zoo.hookimpl
def zoo_models() -> list[zoo.ModelSpec]:
    return [
        zoo.ModelSpec(
            name="vgg16",
            summary="torchvision VGG16, frozen features + a 4608->512->128 head (3x3 avgpool)",
            input=zoo.InputSpec(channels=3, size=32, mean=zoo.IMAGENET_MEAN, std=zoo.IMAGENET_STD),
            head="classifier",
            defaults=zoo.TrainDefaults(
                epochs=5,
                batch_size=1024,
                lr=1e-3,
                optimizer="adam",
                schedule="none",
                strategy="head",
            ),
            pretrained=True,
        )
    ]


@zoo.hookimpl
def zoo_pretrained(spec: zoo.ModelSpec) -> zoo.PretrainedWeights | None:
    if spec.name != "vgg16":
        return None
    return zoo.PretrainedWeights.torch_hub(
        "ImageNet-1k features, torchvision's VGG16_Weights.IMAGENET1K_V1", WEIGHTS_URL
    )


@zoo.hookimpl
def zoo_build(spec: zoo.ModelSpec, num_classes: int, pretrained: bool) -> nn.Module:
    from torch import nn
    from torchvision.models import VGG16_Weights, vgg16

    model = (
        zoo.torchvision_model(vgg16, VGG16_Weights.IMAGENET1K_V1) if pretrained else _random_vgg16()
    )
    model.avgpool = nn.AdaptiveAvgPool2d(output_size=(3, 3))
    model.classifier = nn.Sequential(
        nn.Linear(512 * 3 * 3, 512),
        nn.ReLU(),
        nn.Linear(512, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )
    return model


def _random_vgg16() -> nn.Module:
    """torchvision's VGG16 with its features initialised as torchvision does, without paying
    for the 120M-parameter ImageNet classifier that the transfer head replaces (about 1 s)."""
    import torch
    from torch import nn
    from torchvision.models import vgg16

    with torch.device("meta"):
        model = vgg16()
    model.features.to_empty(device="cpu")
    for module in model.features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return model
