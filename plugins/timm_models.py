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


def check_catalog(entries: Any) -> None:
    """A ValueError unless `entries` is what `timm_catalog` writes: a non-empty list of
    architectures, each with a name, an input (1 or 3 channels, a size, a mean and a
    positive std per channel), its head (or none) and whether it has weights."""
    if not isinstance(entries, list) or not entries:
        raise ValueError("no architectures")
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError("an entry that is not an object")
        channels, size = entry.get("channels"), entry.get("size")
        numbers = [*_numbers(entry.get("mean"), channels), *_numbers(entry.get("std"), channels)]
        if not (
            isinstance(entry.get("arch"), str)
            and isinstance(entry.get("head"), str | None)
            and isinstance(entry.get("pretrained"), bool)
            and channels in (1, 3)
            and isinstance(size, int)
            and 0 < size <= 4096
            and all(v > 0 for v in numbers[channels:])
        ):
            raise ValueError(f"a malformed entry ({str(entry.get('arch'))[:40]!r})")


def _numbers(values: Any, count: Any) -> list[float]:
    if not isinstance(values, list) or len(values) != count:
        raise ValueError("a mean or std of the wrong length")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise ValueError("a mean or std that is not numbers")
    return values


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
    entries = zoo.cached_catalog(f"timm-{TIMM_VERSION}", timm_catalog, check_catalog)
    return [_spec(entry) for entry in entries]


@zoo.hookimpl
def zoo_build(spec: zoo.ModelSpec, num_classes: int, pretrained: bool) -> nn.Module:
    import timm

    arch = spec.name.removeprefix("timm/")
    try:
        return timm.create_model(arch, pretrained=pretrained, num_classes=num_classes)
    except (OSError, RuntimeError) as error:
        raise zoo.ZooError(f"cannot build timm model {arch} ({error})") from None
