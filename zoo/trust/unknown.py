"""The "unknown" answer: inputs unlike the training data, told apart by the Mahalanobis distance
of their features to the nearest class mean, under class-conditional Gaussians with one shared
covariance (Lee et al., 2018; the covariance estimated with scikit-learn's Ledoit-Wolf
shrinkage). The threshold is a high quantile of the distances of held-out in-distribution
images.

The features are the input of the model's first fully connected layer (of at most
`MAX_FEATURES` inputs): the pooled backbone features that the head of ResNet or a timm model
reads, or the convolutional features of LeNet, which tell photographs from digits far better
than its penultimate 84 (on digits: 100% of photographs, crops, noise and blank images against
98% of the crops and none of the two whole photographs).

In the weights file: `meta["unknown"]` (the layer, the threshold, how it was fitted) and the
tensors `zoo.trust.unknown.means` (K, D) and `zoo.trust.unknown.precision` (D, D).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo.specs import InputSpec

MAX_FEATURES = 4096
QUANTILE = 0.99  # of the held-out distances: about 1% of in-distribution images answer unknown
KEY = "unknown"


@dataclass
class UnknownDetector:
    """Class means and a shared precision matrix of the features `layer` receives; an input
    is unknown when its squared distance to the nearest mean exceeds `threshold`."""

    layer: str
    means: torch.Tensor
    precision: torch.Tensor
    threshold: float
    info: dict[str, Any]

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance (N,) of each feature row to the nearest class mean."""
        features = features.float().flatten(1)
        diff = features[:, None, :] - self.means.to(features.device)[None]  # (N, K, D)
        precision = self.precision.to(features.device)
        return torch.einsum("nkd,de,nke->nk", diff, precision, diff).min(1).values

    def unknown(self, features: torch.Tensor) -> torch.Tensor:
        """(N,) bool: True for inputs unlike the training data."""
        return self.distances(features) > self.threshold

    def to_file(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The metadata entry and the extra tensors for `weights.save`."""
        meta = {"layer": self.layer, "threshold": self.threshold, **self.info}
        return meta, {f"{KEY}.means": self.means, f"{KEY}.precision": self.precision}

    @classmethod
    def from_file(
        cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> UnknownDetector | None:
        """The detector a weights file carries, or None (older files, or none was fitted)."""
        entry = meta.get(KEY)
        means, precision = tensors.get(f"{KEY}.means"), tensors.get(f"{KEY}.precision")
        if not entry or means is None or precision is None:
            return None
        info = {k: v for k, v in entry.items() if k not in ("layer", "threshold")}
        return cls(entry["layer"], means.float(), precision.float(), entry["threshold"], info)


def fit_detector(
    layer: str,
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    held_out_features: torch.Tensor,
    quantile: float = QUANTILE,
) -> UnknownDetector:
    """Fit the Gaussians on the training features, the threshold on held-out ones."""
    from sklearn.covariance import LedoitWolf

    features = train_features.float().flatten(1).cpu()
    labels = train_labels.cpu()
    classes = int(labels.max()) + 1
    means = torch.stack(
        [
            features[labels == c].mean(0) if (labels == c).any() else features.mean(0)
            for c in range(classes)
        ]
    )
    centred = features - means[labels]
    precision = torch.from_numpy(LedoitWolf().fit(centred.double().numpy()).precision_).float()
    detector = UnknownDetector(layer, means, precision, 0.0, {})
    held = detector.distances(held_out_features.cpu())
    detector.threshold = float(held.quantile(quantile))
    detector.info = {
        "method": "mahalanobis",
        "quantile": quantile,
        "held_out_images": len(held),
    }
    return detector


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
    """The input `layer` receives and the logits, for every image in `batches`, on the CPU."""
    model.eval()
    features, logits = [], []
    with capture_input(layer) as seen:
        for x in batches:
            seen.clear()
            logits.append(model(x).float().cpu())
            features.append(seen[-1].float().flatten(1).cpu())
    return torch.cat(features), torch.cat(logits)
