"""Where the model looked: heatmaps of the evidence for each image's top class, through captum,
and the deletion test that checks them.

Methods: `saliency` (|input gradient|), `input-x-gradient`, `integrated-gradients` (from a black
image, 32 steps) and `gradcam` (captum's LayerGradCam at `ModelSpec.cam_layer`, else
the last spatial layer found automatically; timm ViTs through their last block's patch tokens
laid out as a grid). Every heatmap is at the model's input size with values in [0, 1].

The deletion test: remove the hottest pixels first (set them to black) and
follow the top class's probability; a map passes when the area under that curve is smaller
than for a random order of the same pixels.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.serving.inference import Classifier

METHODS = ("saliency", "input-x-gradient", "integrated-gradients", "gradcam")
FALLBACK = "saliency"  # for weights files trained before the check existed
DELETION_STEPS = 16
IG_STEPS = 32
CHUNK = 256  # inputs per forward pass in the deletion test
# Interpolated inputs per forward and backward of integrated gradients: their activations are
# all kept for the backward (256 of mobilenetv3_small at 64 px took 265 MB; 32 take 40).
IG_CHUNK = 32
ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_HOOKS = threading.Lock()  # captum hooks the model: one explanation at a time per process


@dataclass
class Explanation:
    """A heatmap per image (N, size, size) in [0, 1] for its top class, and how it was made."""

    heatmaps: torch.Tensor
    method: str


def default_method(classifier: Classifier) -> str:
    """The method the weights file's deletion check chose, or `FALLBACK` for older files."""
    return classifier.meta.get("explain", {}).get("method", FALLBACK)


def explain(classifier: Classifier, batch: torch.Tensor, method: str | None = None) -> Explanation:
    """Heatmaps of the evidence for each image's top class in `batch` (from `inputs`)."""
    method = method or default_method(classifier)
    if method not in METHODS:
        raise ZooError(f"unknown explanation method {method!r}; choose from {', '.join(METHODS)}")
    model = classifier.model.eval()
    with torch.inference_mode(False), torch.enable_grad():
        x = batch.detach().clone()
        with torch.no_grad():
            targets = model(x).argmax(1)
        with _HOOKS:
            maps = _attribute(classifier, x, targets, method)
    return Explanation(_unit(maps.detach().float()), method)


def _attribute(
    classifier: Classifier, x: torch.Tensor, targets: torch.Tensor, method: str
) -> torch.Tensor:
    """Raw (N, size, size) evidence for `targets`, larger where it is stronger."""
    from captum.attr import (
        InputXGradient,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        Saliency,
    )

    model = classifier.model
    x = x.requires_grad_()
    if method == "gradcam":
        layer, grid = cam_layer(classifier)
        handle = layer.register_forward_hook(grid.hook) if grid else None
        try:
            cam = LayerGradCam(model, grid or layer).attribute(
                x, target=targets, relu_attributions=True
            )
        finally:
            if handle:
                handle.remove()
        size = x.shape[-2:]
        return LayerAttribution.interpolate(cam.float(), size, "bilinear")[:, 0]
    if method == "saliency":
        attribution = Saliency(model).attribute(x, target=targets, abs=True)
    elif method == "input-x-gradient":
        attribution = InputXGradient(model).attribute(x, target=targets).abs()
    else:
        ig = IntegratedGradients(model)
        black = _black(classifier, x).expand_as(x[0])[None]
        chunk = max(IG_CHUNK, len(x))  # captum needs at least one step of every image
        attribution = ig.attribute(
            x, baselines=black, target=targets, n_steps=IG_STEPS, internal_batch_size=chunk
        ).abs()
    return attribution.sum(1)


def _unit(maps: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1]: 0 at its minimum, 1 from its 99th percentile up."""
    flat = maps.flatten(1)
    low = flat.min(1).values
    high = flat.quantile(0.99, dim=1)
    span = (high - low).clamp_min(1e-12)
    return ((maps - low.view(-1, 1, 1)) / span.view(-1, 1, 1)).clamp_(0, 1)


class _TokenGrid(nn.Module):
    """A ViT block's patch tokens (N, T, D) as a feature map (N, D, h, w): the reshape that
    lets Grad-CAM weigh channels over space. Runs inside a forward hook on the block, so the
    model itself is never changed."""

    def __init__(self, prefix: int) -> None:
        super().__init__()
        self.prefix = prefix

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, self.prefix :]
        side = math.isqrt(patches.shape[1])
        return patches.transpose(1, 2).reshape(len(tokens), -1, side, side)

    def hook(self, module: nn.Module, args: tuple, tokens: torch.Tensor) -> torch.Tensor:
        grid = self(tokens)
        return torch.cat([tokens[:, : self.prefix], grid.flatten(2).transpose(1, 2)], 1)


def cam_layer(classifier: Classifier) -> tuple[nn.Module, _TokenGrid | None]:
    """The module Grad-CAM weighs, and the token reshape for ViTs (None for convnets)."""
    model, spec = classifier.model, classifier.spec
    name = spec.cam_layer if spec is not None else None
    if name:
        try:
            return model.get_submodule(name), None
        except AttributeError:
            raise ZooError(f"model {spec.name!r} has no module {name!r} (its cam_layer)") from None
    if hasattr(model, "blocks") and hasattr(model, "patch_embed"):  # a timm ViT
        return model.blocks[-1], _TokenGrid(getattr(model, "num_prefix_tokens", 1))
    found = _last_spatial_layer(model, classifier.input.channels, classifier.input.size)
    if found is None:
        model_name = classifier.meta.get("model", "this model")
        raise ZooError(
            f"{model_name} has no layer with a spatial output for Grad-CAM; set cam_layer in "
            f"its ModelSpec, or use --method {FALLBACK}"
        )
    return found, None


def _last_spatial_layer(model: nn.Module, channels: int, size: int) -> nn.Module | None:
    """The last module (in the order of a forward pass) whose output is a (N, C, h, w) map
    larger than 1x1, that runs once per pass (so a hook on it sees one tensor) and is not the
    adaptive pooling before a head (VGG's avgpool: its map is the features' map, resampled)."""
    finished: list[nn.Module] = []
    calls: dict[nn.Module, int] = {}

    def record(module: nn.Module, args: tuple, output: object) -> None:
        calls[module] = calls.get(module, 0) + 1
        spatial = (
            isinstance(output, torch.Tensor) and output.dim() == 4 and output[0, 0].numel() > 1
        )
        if spatial and not isinstance(module, ADAPTIVE_POOLS):
            finished.append(module)

    handles = [m.register_forward_hook(record) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            device = next(model.parameters(), torch.empty(0)).device
            model(torch.zeros(1, channels, size, size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    once = [m for m in finished if calls[m] == 1]
    return once[-1] if once else None


def _black(classifier: Classifier, batch: torch.Tensor) -> torch.Tensor:
    """A black pixel (value 0) after the model's normalisation, (C, 1, 1) like `batch`."""
    mean = torch.tensor(classifier.input.mean, device=batch.device, dtype=batch.dtype)
    std = torch.tensor(classifier.input.std, device=batch.device, dtype=batch.dtype)
    return (-mean / std).view(-1, 1, 1)


def overlay(view: Image.Image, heatmap: torch.Tensor, alpha: float = 0.5) -> Image.Image:
    """`view` with `heatmap` ((h, w) in [0, 1]) laid over it in the 'jet' colours, at the
    view's size."""
    from matplotlib import colormaps

    heat = Image.fromarray((heatmap.detach().cpu().float().numpy() * 255).astype(np.uint8))
    heat = heat.resize(view.size, Image.Resampling.BILINEAR)
    colours = colormaps["jet"](np.asarray(heat, dtype=np.float32) / 255)[..., :3]
    base = np.asarray(view.convert("RGB"), dtype=np.float32) / 255
    mixed = (1 - alpha) * base + alpha * colours
    return Image.fromarray((mixed * 255).round().astype(np.uint8))


@dataclass
class Deletion:
    """Per image: the area under the top-class probability as the hottest pixels go first
    (`scores`), and as the same number go in a random order (`random`). Lower is better."""

    scores: torch.Tensor
    random: torch.Tensor

    @property
    def passed(self) -> torch.Tensor:
        return self.scores < self.random


@torch.no_grad()
def deletion(
    classifier: Classifier, batch: torch.Tensor, heatmaps: torch.Tensor, seed: int = 0
) -> Deletion:
    """The deletion test of `heatmaps` (N, size, size) on `batch`."""
    model = classifier.model.eval()
    logits = model(batch)
    targets = logits.argmax(1)
    generator = torch.Generator().manual_seed(seed)
    random_rank = torch.rand(heatmaps.shape, generator=generator, dtype=torch.float64)
    ties_broken = heatmaps.cpu().double() + 1e-9 * random_rank  # ties go in a random order
    black = _black(classifier, batch)
    scores = _deletion_curve(model, batch, black, ties_broken, targets, classifier.temperature)
    random = _deletion_curve(model, batch, black, random_rank, targets, classifier.temperature)
    return Deletion(scores.cpu(), random.cpu())


def _deletion_curve(
    model: nn.Module,
    batch: torch.Tensor,
    black: torch.Tensor,
    rank: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Mean top-class probability over `DELETION_STEPS + 1` steps that set 0, 1/S, ..., all of
    the pixels (highest `rank` first) to black."""
    n, pixels = len(batch), rank[0].numel()
    order = rank.flatten(1).to(batch.device).argsort(dim=1, descending=True)
    position = torch.empty_like(order)
    position.scatter_(1, order, torch.arange(pixels, device=order.device).expand(n, -1))
    steps = torch.linspace(0, pixels, DELETION_STEPS + 1, device=order.device).round().long()
    kept = (position[:, None, :] >= steps[None, :, None]).view(n, len(steps), 1, *rank.shape[1:])
    inputs = torch.where(kept, batch[:, None], black[None, None]).flatten(0, 1)
    probabilities = []
    for chunk in inputs.split(CHUNK):
        logits = model(chunk.contiguous(memory_format=torch.channels_last))
        probabilities.append((logits.float() / temperature).softmax(1))
    probs = torch.cat(probabilities).view(n, len(steps), -1)
    return probs.gather(2, targets.view(n, 1, 1).expand(-1, len(steps), 1))[..., 0].mean(1)
