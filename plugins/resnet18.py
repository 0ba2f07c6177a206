"""torchvision's ResNet18 for transfer learning: `fc` replaced by Linear(512, num_classes).

With `pretrained`, torchvision's ImageNet weights load first and the head is replaced after
(torchvision refuses num_classes != 1000 together with weights); a 1000-class model keeps the
ImageNet head. State-dict keys stay torchvision's. torch and torchvision are imported only when
the model is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import zoo

if TYPE_CHECKING:
    from torch import nn

WEIGHTS_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"  # IMAGENET1K_V1's


@zoo.hookimpl
def zoo_models() -> list[zoo.ModelSpec]:
    return [
        zoo.ModelSpec(
            name="resnet18",
            summary="torchvision ResNet18, ImageNet transfer with a new Linear(512, classes) head",
            input=zoo.InputSpec(channels=3, size=224, mean=zoo.IMAGENET_MEAN, std=zoo.IMAGENET_STD),
            head="fc",
            defaults=zoo.TrainDefaults(epochs=5, batch_size=64, lr=1e-3),
            pretrained=True,
        )
    ]


@zoo.hookimpl
def zoo_pretrained(spec: zoo.ModelSpec) -> zoo.PretrainedWeights | None:
    if spec.name != "resnet18":
        return None
    return zoo.PretrainedWeights.torch_hub(
        "ImageNet-1k, torchvision's ResNet18_Weights.IMAGENET1K_V1", WEIGHTS_URL, "imagenet"
    )


@zoo.hookimpl
def zoo_build(spec: zoo.ModelSpec, num_classes: int, pretrained: bool) -> nn.Module:
    from torch import nn
    from torchvision.models import ResNet18_Weights, resnet18

    if not pretrained:
        return resnet18(num_classes=num_classes)
    model = zoo.torchvision_model(resnet18, ResNet18_Weights.IMAGENET1K_V1)
    if num_classes != model.fc.out_features:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model
