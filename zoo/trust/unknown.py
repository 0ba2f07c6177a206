"""The "unknown" answer: inputs unlike the training data, told apart by Mahalanobis distances
to the nearest class mean, under class-conditional Gaussians with one shared covariance per
view (Lee et al., 2018; the covariance shrunk as Ledoit and Wolf do, in scikit-learn's closed form).
An input is unknown when any view finds it farther than nearly all held-out in-distribution
images.

The views, each a vector per image:

- `features`: the input of the model's first fully connected layer (of at most `MAX_FEATURES`
  inputs): the pooled backbone features that the head of ResNet or a timm model reads, or the
  convolutional features of LeNet;
- `pixels`: the model's input itself, average-pooled to at most `PIXELS` x `PIXELS`;
- `statistics`: per channel, the input's mean, spread, edge strength, fine detail (what a 3x3
  blur takes away) and border brightness.

Features alone tell photographs from 8x8 digits, but not from Fashion-MNIST's garments, whose
features a photograph's resemble; measured on a Fashion-MNIST LeNet they flag none of the
sample photographs and none of the digits, the three views together flag them all, with noise,
blank images and 97% of photographs' crops, and 1% of the test garments. The thresholds share
one quantile, chosen so that `1 - QUANTILE` of the held-out images are flagged by some view.

In the weights file: `meta["unknown"]` (the layer and the features' threshold, the other views'
thresholds, the training images' background, how it was fitted) and the tensors
`zoo.unknown.means` (K, D) and `zoo.unknown.precision` (D, D) of the features, and
`zoo.unknown.<view>.means` and `.precision` of the other views.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.header import DETECTOR_PIXELS as PIXELS  # the pixels view's side
from zoo.header import DETECTOR_VIEWS as IMAGE_VIEWS  # computed from the model's input batch
from zoo.specs import InputSpec

MAX_FEATURES = 4096
QUANTILE = 0.99  # of the held-out images: about 1% of in-distribution images answer unknown
KEY = "unknown"
FEATURES = "features"
SCALE_FLOOR = 0.01  # added to the statistics' scales before their logarithm
BORDER = 1 / 16  # of an image's side: its border, on each side
DARK, LIGHT = 0.25, 0.5  # a border darker than DARK is dark; lighter than LIGHT, light
PLAIN, PLAIN_SHARE = 0.1, 0.75  # a border is plain if this share is this near its median


def pixels_view(batch: torch.Tensor) -> torch.Tensor:
    """(N, C * s * s): the input batch average-pooled to s = min(size, `PIXELS`) a side."""
    side = min(PIXELS, batch.shape[-1])
    return F.adaptive_avg_pool2d(batch.float(), side).flatten(1)


def statistics_view(batch: torch.Tensor) -> torch.Tensor:
    """(N, 5C): each channel's mean, spread (standard deviation), edge strength (mean absolute
    difference between neighbouring pixels), fine detail (mean absolute difference from its
    3x3 blur) and border mean. The three scales are taken as logarithms (of the scale plus
    `SCALE_FLOOR`): a blank image's zeros are then far from any real image's, not near."""
    x = batch.float()
    across = (x[..., :, 1:] - x[..., :, :-1]).abs().mean((2, 3))
    down = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((2, 3))
    detail = (x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)).abs().mean((2, 3))
    scales = torch.cat([x.std((2, 3)), across + down, detail], 1).add(SCALE_FLOOR).log()
    return torch.cat([x.mean((2, 3)), scales, border(x).mean(-1)], 1)


def border(x: torch.Tensor) -> torch.Tensor:
    """(N, C, P): each channel's outer pixels, a `BORDER` of its side (at least one) on
    every side."""
    edge = max(1, round(x.shape[-1] * BORDER))
    outer = torch.ones(x.shape[-2:], dtype=torch.bool, device=x.device)
    outer[edge:-edge, edge:-edge] = False
    return x[..., outer]


VIEWS = {"pixels": pixels_view, "statistics": statistics_view}


def image_views(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """The views computed from a model-input batch alone, on the CPU."""
    return {name: VIEWS[name](batch).cpu() for name in IMAGE_VIEWS}


def ledoit_wolf_precision(x: torch.Tensor) -> torch.Tensor:
    """The inverse of the Ledoit-Wolf shrunk covariance of the rows of `x` (N, D), in float64:
    scikit-learn's `LedoitWolf().fit(x).precision_`, its closed form (`ledoit_wolf_shrinkage`)
    written in torch, because importing scikit-learn costs a run 140 MB and seconds."""
    x = x.double()
    x = x - x.mean(0)
    n, d = x.shape
    covariance = x.T @ x / n
    squares = x * x
    trace = squares.sum(0) / n  # the covariance's diagonal
    mu = trace.sum() / d
    spread = (covariance**2).sum()
    beta = ((squares.T @ squares).sum() / n - spread) / (d * n)
    delta = (spread - 2 * mu * trace.sum() + d * mu**2) / d
    shrinkage = float(min(beta, delta) / delta) if delta > 0 and beta != 0 else 0.0
    shrunk = (1 - shrinkage) * covariance + shrinkage * mu * torch.eye(d, dtype=x.dtype)
    return torch.linalg.pinv(shrunk, hermitian=True)


@dataclass
class Gaussians:
    """Class means (K, D) and a shared precision (D, D) of one view, and its threshold."""

    means: torch.Tensor
    precision: torch.Tensor
    threshold: float = math.inf

    @classmethod
    def fit(cls, features: torch.Tensor, labels: torch.Tensor) -> Gaussians:
        """The class means of `features` (N, D) and the Ledoit-Wolf precision of their
        deviations from them."""
        features, labels = features.float().flatten(1).cpu(), labels.cpu()
        classes = int(labels.max()) + 1
        means = torch.stack(
            [
                features[labels == c].mean(0) if (labels == c).any() else features.mean(0)
                for c in range(classes)
            ]
        )
        precision = ledoit_wolf_precision(features - means[labels]).float()
        return cls(means, precision)

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance (N,) of each row to the nearest class mean, computed as
        x'Px - 2x'Pm + m'Pm (no (N, K, D) difference tensor)."""
        x = features.double().flatten(1).cpu()
        precision, means = self.precision.double(), self.means.double()
        projected = x @ precision
        squares = (projected * x).sum(1, keepdim=True)
        centres = ((means @ precision) * means).sum(1)
        return (squares - 2 * projected @ means.T + centres).min(1).values.clamp_min(0).float()


@dataclass
class UnknownDetector:
    """A Gaussians per view; an input is unknown when any view's distance exceeds its
    threshold. `layer` is the module whose input is the `features` view."""

    layer: str
    views: dict[str, Gaussians]
    info: dict[str, Any]

    @property
    def background(self) -> str | None:
        """ "dark" or "light" when the training images' borders mostly were, else None."""
        return self.info.get("background")

    def distances(self, batch: torch.Tensor, layer_input: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each view's distance (N,) for a model-input batch and the input `layer` received."""
        inputs = {FEATURES: layer_input, **image_views(batch)}
        return {name: g.distances(inputs[name]) for name, g in self.views.items()}

    def unknown(self, batch: torch.Tensor, layer_input: torch.Tensor) -> torch.Tensor:
        """(N,) bool: True for inputs unlike the training data."""
        found = self.distances(batch, layer_input)
        flags = [found[name] > g.threshold for name, g in self.views.items()]
        return torch.stack(flags).any(0)

    def to_file(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The metadata entry and the extra tensors for `weights.save`."""
        features = self.views[FEATURES]
        others = {name: g for name, g in self.views.items() if name != FEATURES}
        meta = {
            "layer": self.layer,
            "threshold": features.threshold,
            "views": {name: {"threshold": g.threshold} for name, g in others.items()},
            **self.info,
        }
        tensors = {f"{KEY}.means": features.means, f"{KEY}.precision": features.precision}
        for name, g in others.items():
            tensors |= {f"{KEY}.{name}.means": g.means, f"{KEY}.{name}.precision": g.precision}
        return meta, tensors

    @classmethod
    def from_file(
        cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> UnknownDetector | None:
        """The detector a weights file carries, or None (older files, or none was fitted);
        a ZooError if its views do not fit together."""
        entry = meta.get(KEY)
        means, precision = tensors.get(f"{KEY}.means"), tensors.get(f"{KEY}.precision")
        if not entry or means is None or precision is None:
            return None
        views = {FEATURES: _checked(FEATURES, means, precision, entry["threshold"])}
        extra = entry.get("views", {})
        if not isinstance(extra, dict) or not set(extra) <= set(IMAGE_VIEWS):
            raise ZooError(f"unknown.views must name some of {', '.join(IMAGE_VIEWS)}")
        for name, view in extra.items():
            threshold = view.get("threshold") if isinstance(view, dict) else None
            found = tensors.get(f"{KEY}.{name}.means"), tensors.get(f"{KEY}.{name}.precision")
            views[name] = _checked(name, *found, threshold)
        skip = ("layer", "threshold", "views")
        info = {k: v for k, v in entry.items() if k not in skip}
        return cls(entry["layer"], views, info)


def _checked(name: str, means, precision, threshold) -> Gaussians:
    """A view's Gaussians read from a file, or a ZooError naming what does not fit."""
    if means is None or precision is None:
        raise ZooError(f"the detector's {name} view lacks its tensors")
    if means.dim() != 2 or tuple(precision.shape) != (means.shape[1],) * 2:
        raise ZooError(
            f"the detector's {name} view has means {tuple(means.shape)} and precision "
            f"{tuple(precision.shape)}; they need (K, D) and (D, D)"
        )
    if not isinstance(threshold, (int, float)) or not 0 <= threshold < math.inf:
        raise ZooError(f"the detector's {name} view has no finite threshold")
    return Gaussians(means.float(), precision.float(), float(threshold))


def fit_detector(
    layer: str,
    train: dict[str, tuple[torch.Tensor, torch.Tensor]],
    held_out: dict[str, torch.Tensor],
    quantile: float = QUANTILE,
    background: str | None = None,
) -> UnknownDetector:
    """Fit each view's Gaussians on its `train` (rows, labels), and the thresholds on its
    `held_out` rows (the same images for every view): at one quantile of each view's
    held-out distances, the one at which `1 - quantile` of the held-out images are beyond
    some view's threshold."""
    views = {name: Gaussians.fit(*train[name]) for name in train}
    held = {name: views[name].distances(held_out[name]) for name in views}
    count = len(held[FEATURES])
    # Each held-out image's rank in each view, as a fraction; its worst rank over the views.
    ranks = torch.stack([d.argsort().argsort().float() for d in held.values()]) / max(count - 1, 1)
    level = float(ranks.max(0).values.quantile(quantile)) if count else 1.0
    for name, g in views.items():
        g.threshold = float(held[name].quantile(level)) if count else math.inf
    info = {"method": "mahalanobis", "quantile": quantile, "held_out_images": count}
    if background is not None:
        info["background"] = background
    return UnknownDetector(layer, views, info)


def background(images: torch.Tensor) -> str | None:
    """ "dark" or "light" if most uint8 (N, C, H, W) `images` have a plain border of that
    brightness, else None (photographs, noise, mixed backgrounds). A border is plain when
    `PLAIN_SHARE` of its pixels are within `PLAIN` of its median grey, dark or light when that
    median is below `DARK` or above `LIGHT`."""
    if not len(images):
        return None
    edges = border(images.float().div(255).mean(1, keepdim=True))[:, 0]
    level = edges.median(1, keepdim=True).values
    plain = (edges - level).abs().lt(PLAIN).float().mean(1) >= PLAIN_SHARE
    for kind, found in (("dark", level[:, 0] < DARK), ("light", level[:, 0] > LIGHT)):
        if (found & plain).float().mean() > 0.5:
            return kind
    return None


def feature_layer(model: nn.Module, spec: InputSpec, head: str) -> str:
    """The dotted name of the first `nn.Linear` a forward pass calls once, on (N, F) input with
    F <= `MAX_FEATURES`; `head` if there is none."""
    names = {module: name for name, module in model.named_modules()}
    calls: list[nn.Module] = []

    def record(module: nn.Module, args: tuple) -> None:
        if args[0].dim() == 2 and module.in_features <= MAX_FEATURES:
            calls.append(module)

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    handles = [m.register_forward_pre_hook(record) for m in linears]
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model.eval()(torch.zeros(2, spec.channels, spec.size, spec.size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    once = [m for m in calls if calls.count(m) == 1]
    return names[once[0]] if once else head


@contextmanager
def capture_input(module: nn.Module):
    """Collect the input of `module` in each forward pass this thread runs while the block
    runs (other threads may share the model): yields the list it appends to."""
    seen: list[torch.Tensor] = []
    owner = threading.get_ident()

    def record(module: nn.Module, args: tuple) -> None:
        if threading.get_ident() == owner:
            seen.append(args[0])

    handle = module.register_forward_pre_hook(record)
    try:
        yield seen
    finally:
        handle.remove()


@torch.no_grad()
def features_and_logits(
    model: nn.Module, layer: nn.Module, batches: Iterable[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input `layer` receives and the logits, for every input in `batches`, on the CPU."""
    model.eval()
    features, logits = [], []
    with capture_input(layer) as seen:
        for x in batches:
            seen.clear()
            logits.append(model(x).float().cpu())
            features.append(seen[-1].float().flatten(1).cpu())
    return torch.cat(features), torch.cat(logits)


@torch.no_grad()
def views_of(batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The image views of every model-input batch in `batches`, on the CPU."""
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in IMAGE_VIEWS}
    for x in batches:
        for name, found in image_views(x).items():
            rows[name].append(found)
    return {name: torch.cat(found) for name, found in rows.items()}
