"""Layer-wise learning-rate decay (timm's `layer_decay`, from BEiT): the head trains at the
full rate and each layer before it at `decay` times the rate of the next, so the pretrained
early layers, which hold the most general features, move least.

The layers are timm's where the model has a `group_matcher` (EfficientNet: the stem, each
block, the final convolution, the classifier), else its blocks in order: the children that
hold parameters, with `nn.Sequential` and `nn.ModuleList` containers opened (VGG16: each
convolution; ResNet18: the stem's convolution and norm, each residual block). The head's
parameters are always the last layer.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from zoo.specs import ModelSpec


def layer_decayed(
    model: nn.Module, spec: ModelSpec, groups: list[dict], decay: float
) -> list[dict]:
    """`groups` split by layer, each part's `lr_scale` (1 if unset) times `decay` to the power
    of how many layers it lies before the head."""
    layer_of = layers(model, spec)
    top = max(layer_of.values())
    names = {id(p): name for name, p in model.named_parameters()}
    decayed: list[dict] = []
    for group in groups:
        by_layer: dict[int, list[nn.Parameter]] = {}
        for p in group["params"]:
            by_layer.setdefault(layer_of[names[id(p)]], []).append(p)
        for layer, params in sorted(by_layer.items()):
            scale = group.get("lr_scale", 1.0) * decay ** (top - layer)
            decayed.append({**group, "params": params, "lr_scale": scale})
    return decayed


def layers(model: nn.Module, spec: ModelSpec) -> dict[str, int]:
    """Each parameter's layer, 0 nearest the input; the head's the highest."""
    from timm.models import group_parameters  # timm brings torchvision: imported when used

    matcher = getattr(model, "group_matcher", None)
    if matcher is not None:
        layer_of = group_parameters(model, matcher(coarse=False), reverse=True)
    else:
        order = {block: i for i, block in enumerate(_blocks(model))}
        layer_of = group_parameters(model, lambda name: _ordinal(name, order), reverse=True)
    head = f"{spec.head}."
    body = {name: layer for name, layer in layer_of.items() if not name.startswith(head)}
    dense = {layer: i for i, layer in enumerate(sorted(set(body.values())))}
    return {name: dense[body[name]] if name in body else len(dense) for name in layer_of}


def _blocks(module: nn.Module, prefix: str = "") -> Iterator[str]:
    """The dotted names of `module`'s children that hold parameters, in order, containers
    opened."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            yield from _blocks(child, f"{prefix}{name}.")
        elif any(True for _ in child.parameters()):
            yield f"{prefix}{name}"


def _ordinal(name: str, order: dict[str, int]) -> int:
    """The position of the block that holds parameter `name` (0 for the model's own)."""
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        block = ".".join(parts[:end])
        if block in order:
            return order[block]
    return 0
