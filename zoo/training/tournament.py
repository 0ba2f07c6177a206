"""`zoo tournament`: which pretrained backbone suits a dataset, found in minutes on a CPU.

Each candidate's frozen backbone runs once over the training images (as `zoo train` splits
them: the held-out tenth set aside) and a linear probe (scikit-learn's multinomial logistic
regression, on standardised features) is fitted on what its head would receive; candidates are
ranked by the probe's accuracy on the held-out images. The test split is not touched: it stays
for the run the winner then gets.

A probe ranks features, not fine-tunes: where others are within the probe's noise of the winner
(`NOISE` standard errors of the difference of two accuracies on as many held-out images), the
ranking among them says nothing, and `close_calls` names them all.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import torch

from zoo.channels import grey_into
from zoo.data.sources import load_dataset
from zoo.data.splits import ImageSplits, hold_out
from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.specs import ModelSpec
from zoo.training.features import backbone_features
from zoo.training.finetune import head_module
from zoo.trust.introspect import parameter_count
from zoo.trust.metrics import image_batches

PROBE_ITERATIONS = 300  # L-BFGS's, enough for 10 classes of a few thousand features
NOISE = 2.0  # standard errors: two accuracies closer than this are a tie


@dataclass
class Entry:
    """One candidate's result: its probe accuracy, or why it has none."""

    model: str
    pretrained: bool
    image_size: int
    accuracy: float | None = None
    seconds: float = 0.0
    parameters: int | None = None
    held_out: int | None = None  # the images the accuracy is measured on
    error: str | None = None

    @property
    def standard_error(self) -> float | None:
        """The binomial standard error of the probe's accuracy."""
        if self.accuracy is None or not self.held_out:
            return None
        return math.sqrt(self.accuracy * (1 - self.accuracy) / self.held_out)


def candidates(registry: Registry, patterns: list[str]) -> list[ModelSpec]:
    """The models the glob `patterns` match, in order, each once; a ZooError naming a pattern
    that matches none."""
    found: dict[str, ModelSpec] = {}
    for pattern in patterns:
        specs = registry.find(pattern)
        if not specs:
            raise ZooError(f"no model matches {pattern!r}{registry.did_you_mean(pattern)}")
        found.update((spec.name, spec) for spec in specs)
    return list(found.values())


def load(
    registry: Registry, dataset: str, size: int, limit: int | None, data_dir: str | None
) -> ImageSplits:
    """The dataset (`limit` training images of it, stratified) as `zoo train` reads it, photos
    cached at `size`."""
    _, data = load_dataset(registry, dataset, size, data_dir, False, None)
    return data.limit(limit) if limit else data


def probe(
    registry: Registry,
    spec: ModelSpec,
    data: ImageSplits,
    image_size: int | None,
    pretrained: bool = True,
) -> Entry:
    """`spec`'s backbone (pretrained, or as initialised) and a linear probe on its features;
    a candidate that fails, or has no pretrained weights here, gets its one-line reason."""
    size = image_size or spec.input.size
    entry = Entry(spec.name, pretrained, size)
    began = time.perf_counter()
    try:
        if pretrained:
            registry.check_pretrained(spec)
        torch.manual_seed(0)
        model = registry.build(spec, num_classes=len(data.classes), pretrained=pretrained)
        spec_in = grey_into(model, replace(spec.input, size=size), data.train_images.shape[1])
        train, held_images, held_labels = hold_out(data)
        head = head_module(model, spec)
        device = torch.device("cpu")
        x = backbone_features(model, head, image_batches(train.train_images, spec_in, device))
        v = backbone_features(model, head, image_batches(held_images, spec_in, device))
        if x is None or v is None:
            raise ZooError(f"{spec.name}'s head is not its last step on one tensor")
        entry.accuracy = _fit_probe(x, train.train_labels, v, held_labels)
        entry.held_out = len(held_labels)
        entry.parameters = parameter_count(model)
    except (ZooError, RuntimeError, ValueError) as error:
        entry.error = str(error).splitlines()[0]
    entry.seconds = time.perf_counter() - began
    return entry


def _fit_probe(
    x: torch.Tensor, y: torch.Tensor, held: torch.Tensor, held_labels: torch.Tensor
) -> float:
    """The held-out accuracy of a logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, held = x.flatten(1).numpy(), held.flatten(1).numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_ITERATIONS))
    model.fit(x, y.numpy())
    return float((model.predict(held) == held_labels.numpy()).mean())


def ranked(entries: list[Entry]) -> list[Entry]:
    """Entries by probe accuracy, best first; those without one last."""
    return sorted(entries, key=lambda e: (e.accuracy is None, -(e.accuracy or 0.0)))


def close_calls(entries: list[Entry]) -> list[Entry]:
    """The winner among the `ranked` pretrained entries and every other one whose accuracy is
    within `NOISE` standard errors of the difference from it, when there is one; else []."""
    probed = [e for e in entries if e.accuracy is not None and e.pretrained]
    if not probed:
        return []
    first = probed[0]
    tied = [
        e
        for e in probed[1:]
        if first.accuracy - e.accuracy
        < NOISE * math.hypot(first.standard_error or 0.0, e.standard_error or 0.0)
    ]
    return [first, *tied] if tied else []
