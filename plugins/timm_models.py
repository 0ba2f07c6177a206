"""Every timm architecture as `timm/<arch>`, with its input spec and head from timm's pretrained
config. Without timm installed this plugin fails to import and `zoo plugins` says so."""

import timm
from torch import nn

import zoo

FEATURED = (
    "resnet50",
    "efficientnet_b0",
    "mobilenetv3_small_100",
    "convnext_tiny",
    "regnety_008",
    "vit_tiny_patch16_224",
)


def _spec(arch: str, has_weights: bool) -> zoo.ModelSpec:
    cfg = timm.get_pretrained_cfg(arch)
    cfg = cfg.to_dict() if cfg else {}
    channels, size, _ = cfg.get("input_size", (3, 224, 224))
    head = cfg.get("classifier", "head")
    return zoo.ModelSpec(
        name=f"timm/{arch.lower()}",
        summary=f"timm {arch}",
        input=zoo.InputSpec(
            channels, size, cfg.get("mean", (0.5,) * channels), cfg.get("std", (0.5,) * channels)
        ),
        head=head[0] if isinstance(head, (tuple, list)) else head,
        defaults=zoo.TrainDefaults(epochs=3, batch_size=32, lr=1e-3),
        pretrained=has_weights,
        listed=arch in FEATURED,
    )


@zoo.hookimpl
def zoo_models() -> list[zoo.ModelSpec]:
    with_weights = {name.split(".")[0] for name in timm.list_models(pretrained=True)}
    return [_spec(arch, arch in with_weights) for arch in timm.list_models()]


@zoo.hookimpl
def zoo_build(spec: zoo.ModelSpec, num_classes: int, pretrained: bool) -> nn.Module | None:
    if not spec.name.startswith("timm/"):
        return None
    arch = spec.name.removeprefix("timm/")
    try:
        return timm.create_model(arch, pretrained=pretrained, num_classes=num_classes)
    except (OSError, RuntimeError) as error:
        raise zoo.ZooError(f"cannot build timm model {arch} ({error})") from None
