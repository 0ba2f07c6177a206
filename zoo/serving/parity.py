"""`zoo export --check`: an exported file against the PyTorch model it came from, on real images
(scikit-learn's digits test images and its two sample photos) prepared as everywhere else."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo.data.digits import load_digits
from zoo.data.preprocess import prepare
from zoo.registry import Registry
from zoo.serving.export import optional
from zoo.serving.inference import Classifier
from zoo.specs import InputSpec

TOLERANCE = 1e-4  # the largest absolute logit difference that passes
DIGITS = 16  # digits test images in the check batch


@dataclass(frozen=True)
class Parity:
    """How closely an exported model's logits follow PyTorch's."""

    fmt: str
    images: int
    max_abs_diff: float
    top1_same: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= TOLERANCE and self.top1_same == self.images

    def summary(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"{self.fmt} vs PyTorch on {self.images} real images: max |logit diff| "
            f"{self.max_abs_diff:.1e} (limit {TOLERANCE:.0e}), same top-1 "
            f"{self.top1_same}/{self.images}: {verdict}"
        )


def check_images(spec: InputSpec) -> torch.Tensor:
    """Digits test images and scikit-learn's two photos, as contiguous model input."""
    from sklearn.datasets import load_sample_images

    digits = load_digits().test_images[:DIGITS]
    photos = [torch.tensor(photo).permute(2, 0, 1) for photo in load_sample_images().images]
    batches = [prepare(digits, spec), *(prepare(photo[None], spec) for photo in photos)]
    return torch.cat(batches).contiguous()


def _onnx(registry: Registry, path: Path, x: torch.Tensor) -> torch.Tensor:
    ort = optional("onnxruntime", "the ONNX check")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(logits)


def _torchscript(registry: Registry, path: Path, x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # deprecated in favour of torch.export, still supported
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        return torch.jit.load(str(path))(x)


def _pt2(registry: Registry, path: Path, x: torch.Tensor) -> torch.Tensor:
    with open(path, "rb") as file:
        return torch.export.load(file).module()(x)


def _safetensors(registry: Registry, path: Path, x: torch.Tensor) -> torch.Tensor:
    return Classifier.load(registry, path).model(x)


RUNNERS: dict[str, Callable[[Registry, Path, torch.Tensor], torch.Tensor]] = {
    "safetensors": _safetensors,
    "onnx": _onnx,
    "torchscript": _torchscript,
    "pt2": _pt2,
}


@torch.inference_mode()
def check(registry: Registry, classifier: Classifier, fmt: str, path: Path) -> Parity:
    """Run the file at `path` (format `fmt`) and `classifier`'s model on the same real images."""
    x = check_images(classifier.input)
    expected = classifier.model(x).float()
    got = RUNNERS[fmt](registry, path, x).float()
    same = int((got.argmax(1) == expected.argmax(1)).sum())
    return Parity(fmt, len(x), float((got - expected).abs().max()), same)
