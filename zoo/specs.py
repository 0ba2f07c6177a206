"""The plain-data declarations plugins hand to zoo: models, their inputs, datasets.

No torch here: `zoo list` and `zoo --help` must stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._/-]*")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """What a model eats: channels, square size, and the normalisation of its pixels."""

    channels: int
    size: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if self.size < 1:
            raise ValueError(f"size must be positive, not {self.size}")
        object.__setattr__(self, "mean", tuple(self.mean) or (0.5,) * self.channels)
        object.__setattr__(self, "std", tuple(self.std) or (0.5,) * self.channels)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(int(data["channels"]), int(data["size"]), data["mean"], data["std"])


@dataclass(frozen=True)
class TrainDefaults:
    """A model's default training recipe; every field can be overridden on the command line."""

    dataset: str = "digits"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adamw"
    schedule: str = "onecycle"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    strategy: str = "full"


@dataclass(frozen=True)
class ModelSpec:
    """One model a plugin provides.

    `head` is the dotted name of the classifier module (`fc`, `classifier`, `head.fc`); the
    `head` fine-tune strategy trains it alone. `pretrained` says whether ImageNet (or other)
    weights exist for `zoo_build(..., pretrained=True)`. `listed` models show in a plain
    `zoo list`; the others only when a pattern selects them. `cam_layer` is the dotted name of
    the module whose output Grad-CAM weighs (default: found automatically). `plugin` is filled
    in by the registry.
    """

    name: str
    summary: str
    input: InputSpec
    head: str
    defaults: TrainDefaults = field(default_factory=TrainDefaults)
    pretrained: bool = False
    listed: bool = True
    cam_layer: str | None = None
    plugin: str = ""

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"invalid model name {self.name!r}: use [a-z0-9][a-z0-9._/-]*")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset zoo can train on.

    `load(root, download, size=..., workers=...)` returns a `zoo.datasets.ImageSplits` of uint8
    images. `root` is the data folder (`--data-dir`); a dataset whose `takes_path` is true is
    named `NAME:PATH` on the command line and gets PATH as `root` instead. `size` (the model's
    input size), `workers`, `cache_root` (the on-disk cache's folder), `augment` (whether
    random crops follow) and `progress` are hints for loaders that decode files of varying
    sizes; others ignore them. `flip` says whether a mirrored image keeps its label (not so for
    digits), so `--augment` may flip it.
    """

    name: str
    summary: str
    load: Callable[..., Any]
    takes_path: bool = False
    flip: bool = True
    plugin: str = ""

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"invalid dataset name {self.name!r}")
