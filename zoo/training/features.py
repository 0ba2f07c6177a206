"""Cached features: a frozen backbone without random augmentation gives the same head input for
an image every epoch, so it runs once and the head trains on what it produced."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def trains_only(model: nn.Module, head: nn.Module) -> bool:
    """Whether `head` holds every trainable parameter of `model` (and there is one)."""
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    return bool(trainable) and trainable <= {id(p) for p in head.parameters()}


@torch.no_grad()  # not inference_mode: the head trains on these tensors
def backbone_features(
    model: nn.Module, head: nn.Module, batches: Iterable[torch.Tensor], amp: bool = False
) -> torch.Tensor | None:
    """Run `model` (in eval mode) over `batches` and return the input its head received for
    each image, stacked on the batches' device; None if the head is not the model's last step
    taking one tensor, as then its input alone does not determine the output."""
    calls: list[tuple[tuple, torch.Tensor]] = []
    handle = head.register_forward_hook(lambda module, args, output: calls.append((args, output)))
    model.eval()
    features = []
    try:
        for x in batches:
            calls.clear()
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
                output = model(x)
            if len(calls) != 1 or len(calls[0][0]) != 1 or calls[0][1] is not output:
                return None
            features.append(calls[0][0][0].float())
    finally:
        handle.remove()
    return torch.cat(features)
