"""The plain-data declarations plugins hand to zoo: models, their inputs, datasets.

No torch here: `zoo list` and `zoo --help` must stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._/-]*")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """What a model eats: channels, square size, and the normalisation of its pixels. With a
    `border`, the image fills the centre square of `size - 2 * border` pixels and black frames
    it, as LeNet-5 drew MNIST's 28-pixel digits in its 32-pixel field."""

    channels: int
    size: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    border: int = 0

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if self.size < 1:
            raise ValueError(f"size must be positive, not {self.size}")
        if not 0 <= self.border < self.size / 2:
            raise ValueError(f"border must leave an image in size {self.size}, not {self.border}")
        object.__setattr__(self, "mean", tuple(self.mean) or (0.5,) * self.channels)
        object.__setattr__(self, "std", tuple(self.std) or (0.5,) * self.channels)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")

    @property
    def image_size(self) -> int:
        """The side of the square the image fills, inside the border."""
        return self.size - 2 * self.border

    def to_dict(self) -> dict[str, Any]:
        """The fields, `border` only where there is one (as files before it have none)."""
        data = asdict(self)
        return data if self.border else {k: v for k, v in data.items() if k != "border"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        border = int(data.get("border", 0))
        return cls(int(data["channels"]), int(data["size"]), data["mean"], data["std"], border)


def option(
    default: Any,
    help: str,
    *flags: str,
    card: str | None = None,
    runtime: bool = False,
    path: bool = False,
    metavar: str | None = None,
    parser: Callable[[str], Any] | None = None,
) -> Any:
    """A training option, declared once: its default and `zoo train` help text; `flags` (default
    `--name`; `--name/--no-name` for a boolean that can be turned off); the label the model card
    shows it under (`card`, None: not shown); whether `--resume` may change it (`runtime`: it
    decides where a run happens, not what it computes); whether it is a path (`~` and `$VARS`
    expanded); the `parser` of its command-line text, where its type's own is not enough. The
    CLI, the TOML keys, the resume check and the card are derived from these."""
    meta = {"help": help, "flags": flags, "card": card, "runtime": runtime, "path": path}
    return field(default=default, metadata={**meta, "metavar": metavar, "parser": parser})


def learning_rate(text: str) -> float | str:
    """`--lr`'s value: a number, or "auto" (the range test's suggestion)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither a number nor auto") from None


@dataclass(frozen=True)
class TrainDefaults:
    """A model's default training recipe; every field can be overridden on the command line."""

    dataset: str = option("digits", "A name from zoo datasets.", "--dataset", "-d")
    epochs: int = option(10, "Passes over the training split.", card="epochs")
    batch_size: int = option(64, "Per process under torchrun.", card="batch size")
    lr: float | str = option(
        1e-3,
        "Peak learning rate, or auto: the one zoo lr-find suggests.",
        card="peak learning rate",
        metavar="<float|auto>",
        parser=learning_rate,
    )
    optimizer: str = option("adamw", "sgd, adam or adamw.", card="optimizer")
    schedule: str = option("onecycle", "onecycle, cosine or none.", card="schedule")
    weight_decay: float = option(0.0, "Decoupled for adamw.", card="weight decay")
    label_smoothing: float = option(0.0, "Of the cross-entropy.", card="label smoothing")
    strategy: str = option(
        "full",
        "full, head, two-stage (the head alone, then every layer at rates decaying towards "
        "the input; the default with --pretrained), or another the model's plugin adds (zoo "
        "info NAME lists them).",
        card="layers trained",
    )


@dataclass(frozen=True)
class ModelSpec:
    """One model a plugin provides.

    `head` is the dotted name of the classifier module (`fc`, `classifier`, `head.fc`); the
    `head` fine-tune strategy trains it alone. `pretrained` says whether ImageNet (or other)
    weights exist for `zoo_build(..., pretrained=True)`. `listed` models show in a plain
    `zoo list`; the others only when a pattern selects them. `cam_layer` is the dotted name of
    the module whose output Grad-CAM weighs (default: found automatically). `aliases` are
    former names: a weights file that names one loads as this model. `strategies` are the
    fine-tune strategies it takes (a plugin's `zoo_finetune` adds any beyond `full`, `head`
    and `two-stage`). `recipes` are `zoo train` options measured on one dataset, by its name,
    that replace the defaults there (`{"fashion-mnist": {"weight_decay": 0.15, "flip": True}}`):
    options given still win, and what a recipe sets is not scaled to the dataset's size.
    `plugin` is filled in by the registry.
    """

    name: str
    summary: str
    input: InputSpec
    head: str
    defaults: TrainDefaults = field(default_factory=TrainDefaults)
    pretrained: bool = False
    listed: bool = True
    cam_layer: str | None = None
    aliases: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ("full", "head", "two-stage")
    recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    plugin: str = ""

    def __post_init__(self) -> None:
        for field_name in ("aliases", "strategies"):
            if isinstance(getattr(self, field_name), str):
                raise ValueError(f"{field_name} is a list of names, not the string")
            object.__setattr__(self, field_name, tuple(getattr(self, field_name)))
        for name in (self.name, *self.aliases):
            if not NAME_PATTERN.fullmatch(name):
                raise ValueError(f"invalid model name {name!r}: use [a-z0-9][a-z0-9._/-]*")
        if not all(isinstance(r, Mapping) for r in self.recipes.values()):
            raise ValueError("recipes maps a dataset's name to a dict of zoo train options")

    def recipe(self, dataset: str) -> Mapping[str, Any]:
        """The options measured for `dataset` (`NAME` or `NAME:PATH`), or none."""
        return self.recipes.get(dataset.partition(":")[0], {})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a model's pretrained weights come from, as the plugin that knows them says
    (`zoo_pretrained`): plain data, found without importing torch.

    `source` says in a line what they are and where they come from. `file` is their state-dict
    file here (.pth or .safetensors), None where it is not here; `url` is where the plugin's
    builder would download them from (None: nowhere). `provider` says what would provide them
    (a package to install, a file to place). `classes` names the dataset of the classifier head
    they keep at that dataset's class count ("imagenet": 1,000 ImageNet classes), "" when
    their head is not kept. `convert(state_dict, model)`, where given, maps the file's keys
    onto the model's built by `zoo_build`, checked (a ZooError where they do not map), and is
    also how `--init-from` reads files in that format.
    """

    source: str
    file: str | None
    provider: str
    url: str | None = None
    classes: str = ""
    convert: Callable[[dict, Any], dict] | None = None

    @classmethod
    def torch_hub(cls, source: str, url: str, classes: str = "") -> PretrainedWeights:
        """Weights that torch.hub (torchvision's builders) downloads from `url`: here when
        $TORCH_HOME/hub/checkpoints/ holds the file."""
        from zoo.util.hub import torch_hub_file

        file = torch_hub_file(url.rsplit("/", 1)[-1])
        return cls(
            source=source,
            file=str(file) if file.is_file() else None,
            provider=f"the download of {url}, or that file placed in {file.parent}",
            url=url,
            classes=classes,
        )


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset zoo can train on.

    `load(root, download, ...)` returns a `zoo.ImageSplits` of uint8 images (N, C, H, W) and
    int64 labels. `root` is the data folder (`--data-dir`); a dataset whose `takes_path` is true
    is named `NAME:PATH` on the command line and gets PATH as `root` instead; `download` is
    `--download`. The loader may also take any of these keywords, each passed only if its
    signature names it (or has `**kwargs`): `size` (the model's input size), `workers`,
    `cache_root` (the on-disk cache's folder), `augment` (whether random crops follow) and
    `progress`, hints for loaders that decode files of varying sizes. `flip` says whether a
    mirrored image keeps its label (not so for digits), so `--augment` and `--flip` may
    flip it.
    `locate(root)`, where given, says without loading anything where the dataset would be read
    from with data folder `root` (None: the default): a folder, or how it is embedded; None where
    it is not found.
    """

    name: str
    summary: str
    load: Callable[..., Any]
    takes_path: bool = False
    flip: bool = True
    locate: Callable[[Any], str | None] | None = None
    plugin: str = ""

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"invalid dataset name {self.name!r}")
