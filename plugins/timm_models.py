"""Every timm architecture as `timm/<arch>`, with its input spec and head from timm's pretrained
config. Without timm installed this plugin fails to import and `zoo plugins` says so.

timm is imported only to build a model, or once per installed timm version to write the catalog
(names, inputs, heads, which have weights) to zoo's cache; `zoo list` reads it from there.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import zoo

if TYPE_CHECKING:
    from torch import nn

TIMM_VERSION = version("timm")  # PackageNotFoundError (an ImportError) without timm
FEATURED = (
    "resnet50",
    "efficientnet_b0",
    "mobilenetv3_small_100",
    "convnext_tiny",
    "regnety_008",
    "vit_tiny_patch16_224",
)


def timm_catalog() -> list[dict[str, Any]]:
    """Each timm architecture's name, input, head and whether it has weights (imports timm)."""
    import timm

    with_weights = {name.split(".")[0] for name in timm.list_models(pretrained=True)}
    entries = []
    for arch in timm.list_models():
        cfg = timm.get_pretrained_cfg(arch)
        cfg = cfg.to_dict() if cfg else {}
        channels, size, _ = cfg.get("input_size", (3, 224, 224))
        head = cfg.get("classifier", "head")
        entries.append(
            {
                "arch": arch,
                "channels": channels,
                "size": size,
                "mean": list(cfg.get("mean", (0.5,) * channels)),
                "std": list(cfg.get("std", (0.5,) * channels)),
                "head": head[0] if isinstance(head, (tuple, list)) else head,
                "pretrained": arch in with_weights,
            }
        )
    return entries


def _spec(entry: dict[str, Any]) -> zoo.ModelSpec:
    arch = entry["arch"]
    return zoo.ModelSpec(
        name=f"timm/{arch.lower()}",
        summary=f"timm {arch}",
        input=zoo.InputSpec(entry["channels"], entry["size"], entry["mean"], entry["std"]),
        head=entry["head"],
        defaults=zoo.TrainDefaults(epochs=3, batch_size=32, lr=1e-3),
        pretrained=entry["pretrained"],
        listed=arch in FEATURED,
    )


@zoo.hookimpl
def zoo_models() -> list[zoo.ModelSpec]:
    return [_spec(entry) for entry in zoo.cached_catalog(f"timm-{TIMM_VERSION}", timm_catalog)]


@zoo.hookimpl
def zoo_build(spec: zoo.ModelSpec, num_classes: int, pretrained: bool) -> nn.Module:
    import timm

    arch = spec.name.removeprefix("timm/")
    try:
        return timm.create_model(arch, pretrained=pretrained, num_classes=num_classes)
    except (OSError, RuntimeError) as error:
        raise zoo.ZooError(f"cannot build timm model {arch} ({error})") from None
