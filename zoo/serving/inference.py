"""A trained weights file as a ready classifier: the data flow's last step,
`weights.read -> zoo_build + state dict`, shared by the demo, `zoo predict` and `zoo eval`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from zoo import weights
from zoo.data.preprocess import (
    as_image,
    ink_square,
    pil_to_uint8,
    prepare,
    reduce_uint8,
    resize_uint8,
)
from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.specs import InputSpec, ModelSpec
from zoo.trust.unknown import UnknownDetector, background, capture_input


@dataclass
class Predictions:
    """One forward pass over a batch: calibrated class probabilities (N, K), and (N,) bool
    `unknown` for inputs unlike the training data (all False when the file has no detector)."""

    probabilities: torch.Tensor
    unknown: torch.Tensor


@dataclass
class Answer:
    """One image's top classes {label: calibrated probability}, most likely first, and whether
    it is unlike the training data."""

    top: dict[str, float]
    unknown: bool

    @property
    def label(self) -> str:
        """The most likely class."""
        return next(iter(self.top))


Image_ = Image.Image | np.ndarray | str | Path  # what `Classifier.predict` takes


@dataclass
class Classifier:
    """A model in eval mode with its class names and input spec, loaded from a weights file,
    with the temperature and unknown-input detector fitted when it was trained (if any)."""

    path: Path
    model: nn.Module
    meta: dict[str, Any]
    input: InputSpec
    classes: list[str]
    spec: ModelSpec | None = None
    temperature: float = 1.0
    detector: UnknownDetector | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls, registry: Registry, path: str | Path, max_parameters: int | None = None
    ) -> Classifier:
        """Build the model a weights file names and load its state, once `weights.check_file`
        has passed (nothing is built or read before) and its tensors are finite; or raise a
        ZooError."""
        meta, spec, _ = weights.check_file(registry, path, max_parameters)
        classes = list(meta["classes"])
        state, _ = weights.read(path)
        weights.check_finite(path, state)
        extra = weights.read_finite_extra(path)
        model = weights.build_for(registry, spec, meta)  # a grey-trained RGB model's filters summed
        weights.load_state(model, state, path)
        model.eval().to(memory_format=torch.channels_last)
        return cls(
            Path(path),
            model,
            meta,
            weights.input_spec(meta),
            classes,
            spec,
            float(meta.get("calibration", {}).get("temperature", 1.0)),
            UnknownDetector.from_file(meta, extra),
        )

    @classmethod
    def imagenet(cls, registry: Registry, name: str) -> Classifier:
        """Model `name`'s pretrained ImageNet classifier (1000 classes, their names), from the
        weights its plugin says are here (`zoo_pretrained`), in memory."""
        from zoo.serving.imagenet import imagenet_classes, imagenet_weights

        pretrained = imagenet_weights(registry, name)
        spec = registry.model(name)
        model = registry.build(spec, num_classes=1000, pretrained=True)
        categories = imagenet_classes()
        meta = {
            "model": spec.name,
            "plugin": spec.plugin,
            "classes": categories,
            "input": spec.input.to_dict(),
            "dataset": "imagenet",
            "metrics": {},
            "settings": {"weights": pretrained.source},
        }
        model.eval().to(memory_format=torch.channels_last)
        return cls(Path(pretrained.file), model, meta, spec.input, categories, spec)

    @classmethod
    def open(cls, registry: Registry, name: str | Path) -> Classifier:
        """A weights file, or `imagenet/<model>`: that model's pretrained ImageNet classifier."""
        from zoo.serving.imagenet import IMAGENET

        text = str(name)
        if text.startswith(IMAGENET) and not Path(name).exists():
            return cls.imagenet(registry, text.removeprefix(IMAGENET))
        return cls.load(registry, name)

    def to_uint8(self, image: Image.Image) -> torch.Tensor:
        """A PIL image as the uint8 (C, H, W) tensor this model's preprocessing takes."""
        return pil_to_uint8(image, self.input.channels, self.input.image_size)

    def model_image(self, image: Image.Image, at_source: bool = False) -> torch.Tensor:
        """A PIL image as this model's uint8 (C, s, s) input image, s its size inside any border:
        resized here, so a batch of them only needs framing and normalising. With `at_source`,
        first reduced to the resolution the training images were stored at, when that is below
        s (the digits' 8x8, which training scales up): a drawing's strokes then reach the model
        as the training digits' did. For a model trained on light-on-dark images (digits,
        garments), an image on light paper (a scan, a product photo) is taken as a drawing is:
        its ink made light on black (`preprocess.ink_square`), then reduced to the source size."""
        x = self.to_uint8(image)[None]
        if not at_source and self.light_on_dark() and background(x) == "light":
            square = ink_square(pil_to_uint8(image, channels=1)[0].numpy())
            if square is not None:
                x, at_source = self.to_uint8(square)[None], True
        source = self.meta.get("source_size")
        if at_source and isinstance(source, int) and source < self.input.image_size:
            x = reduce_uint8(x, source)
        return resize_uint8(x, self.input.image_size)[0]

    def light_on_dark(self) -> bool:
        """Whether the training images were light on a dark background (as the detector
        recorded)."""
        return self.detector is not None and self.detector.background == "dark"

    def inputs(self, images: list[torch.Tensor]) -> torch.Tensor:
        """The model's input batch for uint8 (C, H, W) images of any sizes."""
        return torch.cat([prepare(image[None], self.input) for image in images])

    def predict(self, images: Image_ | list[Image_], k: int = 5) -> Answer | list[Answer]:
        """The `Answer` for an image, or a list of them for a list: PIL images, arrays
        (`preprocess.as_image`) or image paths, prepared as `zoo predict` prepares files."""
        items = images if isinstance(images, list | tuple) else [images]
        found = self.answers([self.model_image(as_image(item)) for item in items], k)
        if None in found:
            raise ZooError(
                f"the model's answer for image {found.index(None)} is not a finite number"
            )
        return found if isinstance(images, list | tuple) else found[0]

    def answers(self, images: list[torch.Tensor], k: int = 5) -> list[Answer | None]:
        """The top-`k` `Answer` of each model image (uint8 (C, size, size), `model_image`),
        or None where the model's answer is not finite (logits that overflow)."""
        predictions = self.predict_batch(prepare(torch.stack(images), self.input))
        return [
            Answer(self.top(p, k), bool(u)) if bool(p.isfinite().all()) else None
            for p, u in zip(predictions.probabilities, predictions.unknown, strict=True)
        ]

    @torch.inference_mode()
    def predict_batch(self, batch: torch.Tensor) -> Predictions:
        """Calibrated probabilities and the unknown flags for a batch made by `inputs`, from
        one forward pass."""
        if self.detector is None:
            logits = self.model(batch)
            unknown = torch.zeros(len(batch), dtype=torch.bool)
        else:
            with capture_input(self.model.get_submodule(self.detector.layer)) as seen:
                logits = self.model(batch)
            unknown = self.detector.unknown(batch, seen[-1]).cpu()
        return Predictions((logits.float() / self.temperature).softmax(1), unknown)

    def probabilities_of(self, batch: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities (N, classes) for a batch made by `inputs`."""
        return self.predict_batch(batch).probabilities

    def probabilities(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Class probabilities (N, classes) for uint8 (C, H, W) images of any sizes."""
        return self.probabilities_of(self.inputs(images))

    def top(self, probabilities: torch.Tensor, k: int = 5) -> dict[str, float]:
        """The `k` most likely classes of one image's probabilities, as {label: probability}."""
        values, indices = probabilities.topk(min(k, len(self.classes)))
        return {self.classes[i]: float(v) for v, i in zip(values, indices, strict=True)}
