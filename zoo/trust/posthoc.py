"""What `zoo train` fits on a trained model before it writes the weights file: the temperature
and the unknown-input detector (on the held-out part of the training split), and the checked
default explanation method (the deletion test on test images). Returns what goes into the
file's metadata and its extra tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.data.splits import ImageSplits
from zoo.specs import InputSpec, ModelSpec
from zoo.trust import analysis, calibrate, unknown
from zoo.trust.metrics import EVAL_BATCH, image_batches

# Small models (LeNet, the CIFAR CNN) check explanations on more test images than large ones,
# whose gradients and deletion curves cost far more.
SMALL = {"input": 64, "parameters": 1_000_000}
CHECK_IMAGES = {True: 100, False: 8}
# The detector's class Gaussians need no more training images than this (class-stratified),
# so the fit stays a small part of a run on a large dataset.
DETECTOR_IMAGES = 5_000
BACKGROUND_IMAGES = 500  # training images whose borders say whether the background is dark


@dataclass
class PostHoc:
    """Additions to a weights file: metadata entries and extra tensors."""

    meta: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


def fit_posthoc(
    model: nn.Module,
    spec: ModelSpec,
    input_spec: InputSpec,
    data: ImageSplits,
    held_out: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    run_dir: Path | None = None,
    title: str = "",
    backbone_features: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    test_logits: torch.Tensor | None = None,
) -> PostHoc:
    """Fit the temperature and the detector on `held_out` (uint8 images, labels), the
    detector's Gaussians on `data`'s training split; choose the explanation method on its test
    split; with `run_dir`, write the reliability diagram and the top-loss gallery there.

    `backbone_features` are the train, held-out and test images' cached inputs of `spec.head`
    (a frozen backbone's features, computed once for training): when the detector's layer is in the
    head, the splits go through the head alone instead of the whole model again; otherwise the
    detector's Gaussians take up to `DETECTOR_IMAGES` training images. `test_logits`, where
    given, are the test split's, computed already.
    """
    from zoo.serving.inference import Classifier

    result = PostHoc()
    temperature = 1.0
    held_images, held_labels = held_out
    name = unknown.feature_layer(model, input_spec, spec.head)
    layer = model.get_submodule(name)

    cached = backbone_features is not None and f"{name}.".startswith(f"{spec.head}.")

    def features_and_logits(split: int, images) -> tuple[torch.Tensor, torch.Tensor]:
        if cached:
            batches = backbone_features[split].float().split(EVAL_BATCH)
            return unknown.features_and_logits(model.get_submodule(spec.head), layer, batches)
        return unknown.features_and_logits(model, layer, image_batches(images, input_spec, device))

    if len(held_labels):
        held_features, held_logits = features_and_logits(1, held_images)
        temperature = calibrate.fit_temperature(held_logits, held_labels)
        sample = data.limit(DETECTOR_IMAGES)  # the image views' training images
        train = data if cached else sample
        train_features, _ = features_and_logits(0, train.train_images)
        train_views = unknown.views_of(image_batches(sample.train_images, input_spec, device))
        held_views = unknown.views_of(image_batches(held_images, input_spec, device))
        detector = unknown.fit_detector(
            name,
            {
                unknown.FEATURES: (train_features, train.train_labels),
                **{view: (rows, sample.train_labels) for view, rows in train_views.items()},
            },
            {unknown.FEATURES: held_features, **held_views},
            background=unknown.background(_first(sample.train_images, BACKGROUND_IMAGES)),
        )
        result.meta[unknown.KEY], result.tensors = detector.to_file()
    if test_logits is None:
        _, test_logits = features_and_logits(2, data.test_images)
    result.meta["calibration"] = {
        **analysis.calibration(test_logits, data.test_labels, temperature),
        "held_out_images": len(held_labels),
    }
    if run_dir is not None:
        analysis.write_figures(
            run_dir,
            data.test_images,
            data.test_labels,
            test_logits,
            temperature,
            data.classes,
            title,
        )
    classifier = Classifier(
        path=None,  # type: ignore[arg-type]
        model=model.eval(),
        meta={"model": spec.name},
        input=input_spec,
        classes=data.classes,
        spec=spec,
        temperature=temperature,
    )
    result.meta["explain"] = choose_method(classifier, data.test_images, device)
    return result


def _first(images, count: int) -> torch.Tensor:
    """The first `count` of `images` (a tensor, or mapped from the cache) as a uint8 tensor."""
    first = images[:count]
    return first if isinstance(first, torch.Tensor) else first.read()


def choose_method(classifier, images: torch.Tensor, device: torch.device) -> dict[str, Any]:
    """The method whose maps pass the deletion test most often on (up to `CHECK_IMAGES` of,
    evenly spaced) `images`, with every method's pass rate; methods the model cannot run are
    left out."""
    from zoo.errors import ZooError
    from zoo.trust.explain import METHODS, deletion, explain

    parameters = sum(p.numel() for p in classifier.model.parameters())
    small = classifier.input.size <= SMALL["input"] and parameters <= SMALL["parameters"]
    count = CHECK_IMAGES[small]
    step = max(1, len(images) // count)
    batch = next(image_batches(images[::step][:count], classifier.input, device, count))
    rates: dict[str, float] = {}
    for method in METHODS:
        try:
            maps = explain(classifier, batch, method).heatmaps
        except ZooError:  # no layer for Grad-CAM
            continue
        rates[method] = deletion(classifier, batch, maps).passed.float().mean().item()
    best = max(rates, key=rates.get)  # the first of equals: METHODS lists the cheaper first
    return {"method": best, "deletion_pass_rate": rates, "images": len(batch), "split": "test"}
