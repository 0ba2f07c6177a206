"""`TrainConfig`: every option of `zoo train`, each declared once (`zoo.specs.option`).

The command's options, the `--config FILE.toml` keys, the `--resume` check and the model
card's rows are all derived from these fields. No torch here: the CLI reads it to start.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import Field, asdict, dataclass, fields, replace
from typing import Any

from zoo.channels import GREY_MODES
from zoo.errors import ZooError
from zoo.header import MAX_INPUT_SIZE
from zoo.specs import InputSpec, ModelSpec, TrainDefaults, option

OPTIMIZERS = ("sgd", "adam", "adamw")
SCALED = ("epochs", "batch_size", "lr")  # the defaults scaled to the training split's size
AUTO = "auto"  # --lr auto: the learning-rate range test's suggestion (zoo.training.lr_find)
PATIENCE_FROM, MIN_PATIENCE = 12, 3  # runs this long stop early by default, after this many
SCHEDULES = ("onecycle", "cosine", "none")
TWO_STAGE = "two-stage"
# two-stage's head-only epochs: on cached features they cost little more than one forward pass
HEAD_EPOCHS, HEAD_EPOCHS_AUGMENTED = 3, 1
LAYER_DECAY = 0.95  # two-stage's default, measured on Fashion-MNIST (0.8 cost 3 points there)
# Batch norms' running statistics while every layer trains: kept as loaded, or updated.
KEPT, BATCH = "kept", "batch"
NORM_STATISTICS = (KEPT, BATCH)


def recipe_in_effect(spec: ModelSpec, dataset: str, limit: int | None) -> dict[str, Any]:
    """`spec`'s recipe for `dataset`, less its epochs, batch size and rate with a `limit` (they
    fit the whole training split); a ZooError naming the plugin where it sets anything but a
    `zoo train` option that decides what a run computes."""
    recipe = dict(spec.recipe(dataset))
    settable = {f.name for f in fields(TrainConfig) if not f.metadata["runtime"]} - {"dataset"}
    for name in sorted(set(recipe) - settable):
        close = difflib.get_close_matches(name, settable, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ZooError(
            f"plugin {spec.plugin}: the recipe of {spec.name} for {dataset.partition(':')[0]} "
            f"sets {name!r}{hint}, which is no zoo train option that decides what a run computes"
        )
    return {k: v for k, v in recipe.items() if not (limit and k in SCALED)}


def duration(text: str) -> float:
    """`--time-budget`'s value in seconds: a number of seconds, or one with a unit (90s, 10m,
    1.5h)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 10m or 1.5h")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def _duration(text: str, name: str) -> float:
    try:
        return duration(text)
    except ValueError as error:
        raise ZooError(f"{name}: {error}") from None


@dataclass(frozen=True)
class TrainConfig(TrainDefaults):
    """Everything that decides a run: a model's `TrainDefaults` and the rest of the options."""

    augment: bool = option(
        False,
        "Random crops (resized ones for folder and hf photos), and flips where the dataset "
        "allows (not digits).",
        "--augment/--no-augment",
        card="augmentation",
    )
    flip: bool | None = option(
        None,
        "Mirror half of each batch where the dataset allows (not digits) [with --augment].",
        "--flip/--no-flip",
        card="horizontal flips",
    )
    trivial_augment: bool = option(False, "With --augment on photos: TrivialAugmentWide.")
    image_size: int | None = option(None, "Input size, not the model's.", card="image size")
    pretrained: bool = option(False, "Start from ImageNet.", "--pretrained/--no-pretrained")
    grey: str = option(
        "sum",
        "Grey images into an RGB model: sum (its first convolution's filters summed, one input "
        "channel) or repeat (the channel repeated on the device).",
    )
    init_from: str | None = option(
        None, "Start from a .safetensors or .pth file.", metavar="FILE", path=True
    )
    seed: int = option(
        0, "Seeds the new weights, the batch order and the augmentation.", card="seed"
    )
    limit: int | None = option(None, "Train on N images (stratified).", card="image limit")
    device: str = option("auto", "auto, cpu, cuda or mps.", runtime=True)
    amp: bool = option(False, "bf16 autocast.", "--amp/--no-amp", card="bf16 autocast")
    compile: bool = option(
        False, "torch.compile the model.", "--compile/--no-compile", runtime=True
    )
    workers: int | None = option(None, "Decoding processes (folders).", runtime=True)
    data_dir: str | None = option(
        None,
        "Where datasets live (default $ZOO_DATA, ~/.cache/zoo/data).",
        runtime=True,
        path=True,
    )
    download: bool = option(False, "Fetch the data.", runtime=True)
    threads: int | None = option(None, "CPU threads [the fastest, measured].", runtime=True)
    channels_last: bool | None = option(
        None,
        "Train in the channels_last memory format, or contiguous [the faster, measured].",
        "--channels-last/--no-channels-last",
        runtime=True,
    )
    head_epochs: int | None = option(
        None,
        f"With --strategy {TWO_STAGE}: epochs of the head alone before --epochs of every layer "
        f"[{HEAD_EPOCHS}; with --augment {HEAD_EPOCHS_AUGMENTED}].",
        card="head-only epochs first",
    )
    layer_decay: float | None = option(
        None,
        "Each layer's rate this times the next one's, from the head towards the input (timm's "
        f"layer decay) [{TWO_STAGE}: {LAYER_DECAY}; else 1, none].",
        card="layer-wise rate decay",
    )
    norm_statistics: str | None = option(
        None,
        "While every layer trains, batch norms' running statistics: kept (as loaded, in eval "
        f"mode; their scales and shifts still train) or batch (updated from each batch) "
        f"[{TWO_STAGE}: kept; else batch].",
        card="batch-norm statistics",
    )
    patience: int | None = option(
        None,
        "Stop after N epochs in which neither the validation accuracy nor its loss improved; "
        f"0: never [a quarter of the epochs, at least {MIN_PATIENCE}, for runs of "
        f"{PATIENCE_FROM} epochs or more, counted from the middle of a cosine or onecycle "
        "schedule at the earliest].",
        card="patience",
    )
    ema: float | None = option(
        None,
        "Keep an exponential moving average of the weights at this decay (timm's ModelEmaV3, "
        "its decay warmed up); validation, the best epoch and the weights file use it.",
        metavar="DECAY",
        card="EMA of weights, decay",
    )
    warmup: int | None = option(
        None,
        "Epochs of linear warmup to the peak rate (for onecycle: its rising phase, else 30%).",
        card="warmup epochs",
    )
    random_erasing: float | None = option(
        None,
        "Erase a random rectangle of each image with this probability (timm's RandomErasing).",
        metavar="P",
        card="random erasing",
    )
    mixup: float | None = option(None, "Mixup's alpha (timm's Mixup).", card="mixup alpha")
    cutmix: float | None = option(
        None,
        "CutMix's alpha (timm's); with --mixup, one or the other per batch.",
        card="cutmix alpha",
    )
    balance: bool = option(
        False,
        "Draw each epoch's images class-balanced (with replacement), for imbalanced folders.",
        "--balance/--no-balance",
        card="class-balanced sampling",
    )
    time_budget: float | str | None = option(
        None,
        "Fit the run's epochs (at most --epochs) into a wall-clock budget: 90s, 10m, 1.5h or "
        "seconds; stop at the last epoch that fits, with the best weights so far.",
        metavar="DURATION",
        card="time budget, seconds",
        parser=duration,
    )

    @property
    def stop_after(self) -> int | None:
        """Epochs without progress on validation (a better accuracy or a lower loss) that end
        the run (None: never)."""
        if self.patience is not None:
            return self.patience or None
        return max(MIN_PATIENCE, self.epochs // 4) if self.epochs >= PATIENCE_FROM else None

    @property
    def head_stage(self) -> int:
        """The epochs that train the head alone before the others (two-stage; else 0)."""
        if self.strategy != TWO_STAGE:
            return 0
        if self.head_epochs is not None:
            return self.head_epochs
        return HEAD_EPOCHS_AUGMENTED if self.random_input else HEAD_EPOCHS

    @property
    def total_epochs(self) -> int:
        """Every epoch of the run: the head stage's, then `epochs`."""
        return self.head_stage + self.epochs

    @property
    def decay(self) -> float:
        """The layer-wise rate decay in effect (1: none)."""
        if self.layer_decay is not None:
            return self.layer_decay
        return LAYER_DECAY if self.strategy == TWO_STAGE else 1.0

    @property
    def keeps_norm_statistics(self) -> bool:
        """Whether every batch norm keeps its running statistics while all layers train."""
        if self.norm_statistics is not None:
            return self.norm_statistics == KEPT
        return self.strategy == TWO_STAGE

    @property
    def flips(self) -> bool:
        """Whether half of each batch is mirrored (where the dataset allows): `flip`, or else
        `augment`."""
        return self.augment if self.flip is None else self.flip

    @property
    def random_input(self) -> bool:
        """Whether each step's input is drawn anew (so a frozen backbone's features cannot be
        cached): augmentation, flips, random erasing, mixup or cutmix."""
        return self.augment or self.flips or bool(self.random_erasing or self.mixup or self.cutmix)

    @classmethod
    def for_model(cls, spec: ModelSpec, **overrides: Any) -> TrainConfig:
        """The model's defaults, its recipe for the dataset over them (less its epochs, batch
        size and rate with a `limit`: those fit the whole training split), and every option
        that is not None over both; with `pretrained` and no strategy given, `two-stage` where
        the model's default is `full`."""
        names = {f.name for f in fields(cls)}
        given = {k: v for k, v in overrides.items() if v is not None and k in names}
        recipe = recipe_in_effect(
            spec, given.get("dataset", spec.defaults.dataset), given.get("limit")
        )
        if (
            given.get("pretrained")
            and "strategy" not in given
            and spec.defaults.strategy == "full"
            and TWO_STAGE in spec.strategies
        ):
            given["strategy"] = TWO_STAGE
        return cls(**{**asdict(spec.defaults), **recipe, **given})

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "limit", "image_size", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ZooError(f"--{name.replace('_', '-')} must be at least 1")
        if self.image_size is not None and self.image_size > MAX_INPUT_SIZE:
            raise ZooError(f"--image-size must be at most {MAX_INPUT_SIZE} (as weights files)")
        if self.lr != AUTO and (isinstance(self.lr, str) or not self.lr > 0):
            raise ZooError(f"--lr must be a positive number, or {AUTO}; not {self.lr!r}")
        if self.patience is not None and self.patience < 0:
            raise ZooError("--patience must not be negative (0: never stop early)")
        if self.weight_decay < 0:
            raise ZooError("--weight-decay must not be negative")
        if not 0 <= self.label_smoothing < 1:
            raise ZooError("--label-smoothing must be in [0, 1)")
        if self.workers is not None and self.workers < 0:
            raise ZooError("--workers must not be negative")
        if self.trivial_augment and not self.augment:
            raise ZooError("--trivial-augment needs --augment")
        if self.seed < 0:
            raise ZooError("--seed must not be negative")
        if self.optimizer not in OPTIMIZERS:
            raise ZooError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.grey not in GREY_MODES:
            raise ZooError(f"unknown --grey {self.grey!r}; choose from {GREY_MODES}")
        if self.schedule not in SCHEDULES:
            raise ZooError(f"unknown schedule {self.schedule!r}; choose from {SCHEDULES}")
        self._check_stages()
        self._check_knobs()

    def _check_stages(self) -> None:
        if self.head_epochs is not None and self.strategy != TWO_STAGE:
            raise ZooError(f"--head-epochs is for --strategy {TWO_STAGE}, not {self.strategy}")
        if self.head_epochs is not None and self.head_epochs < 0:
            raise ZooError("--head-epochs must not be negative")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ZooError("--layer-decay must be in (0, 1] (1: every layer at the same rate)")
        if self.layer_decay is not None and self.strategy == "head":
            raise ZooError("--layer-decay has no effect with --strategy head (one layer trains)")
        if self.norm_statistics is not None and self.norm_statistics not in NORM_STATISTICS:
            raise ZooError(
                f"unknown --norm-statistics {self.norm_statistics!r}; choose from "
                f"{', '.join(NORM_STATISTICS)}"
            )
        if self.norm_statistics is not None and self.strategy == "head":
            raise ZooError("--norm-statistics has no effect with --strategy head (no norm trains)")
        if self.lr == AUTO and self.strategy == TWO_STAGE:
            raise ZooError(
                f"--lr auto is not for --strategy {TWO_STAGE} (its stages want different "
                "rates); give --lr, or see zoo lr-find with --strategy head and full"
            )

    def _check_knobs(self) -> None:
        """The recipe knobs: EMA, warmup, erasing, mixing and the time budget."""
        if self.ema is not None and not 0 < self.ema < 1:
            raise ZooError(f"--ema must be a decay in (0, 1), such as 0.999; not {self.ema}")
        if self.warmup is not None and not 0 <= self.warmup < self.epochs:
            raise ZooError(f"--warmup must be from 0 to --epochs - 1 ({self.epochs - 1})")
        if self.random_erasing is not None and not 0 <= self.random_erasing <= 1:
            raise ZooError("--random-erasing must be a probability in [0, 1]")
        for name in ("mixup", "cutmix"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ZooError(f"--{name} must not be negative (0: off)")
        if isinstance(self.time_budget, str):  # from a --config file
            object.__setattr__(self, "time_budget", _duration(self.time_budget, "--time-budget"))
        if self.time_budget is not None and not self.time_budget > 0:
            raise ZooError(f"--time-budget must be positive, not {self.time_budget:g}s")

    def input_spec(self, spec: ModelSpec) -> InputSpec:
        """The model's input spec, at `image_size` if one is set (its border kept)."""
        if not self.image_size:
            return spec.input
        if self.image_size <= 2 * spec.input.border:
            raise ZooError(
                f"--image-size must be over {2 * spec.input.border}: {spec.name}'s input has a "
                f"border of {spec.input.border} pixels"
            )
        return replace(spec.input, size=self.image_size)

    def resumed(self, saved: dict[str, Any], given: Iterable[str] = ()) -> TrainConfig:
        """The saved run's settings, with only this config's runtime ones; a ZooError if an
        option in `given` (those set on purpose) asks for another value of any other. An option
        the saved run predates counts as its default there."""
        known = {f.name: f for f in fields(TrainConfig)}
        saved = {name: value for name, value in saved.items() if name in known}
        saved = {**{name: f.default for name, f in known.items() if name not in saved}, **saved}
        changed = [
            f"--{name.replace('_', '-')} {getattr(self, name)} (the run has {saved[name]})"
            for name in sorted(set(given) & set(known))
            if not known[name].metadata["runtime"] and getattr(self, name) != saved[name]
        ]
        if changed:
            raise ZooError(
                f"--resume continues the run with its own settings, but {', '.join(changed)} "
                "asks for others; drop them, or start a new run with another --run-name"
            )
        runtime = {name: getattr(self, name) for name, f in known.items() if f.metadata["runtime"]}
        return replace(TrainConfig(**saved), **runtime)


def default_run_name(model: str, dataset: str) -> str:
    """The default run name, `<model>-<dataset>`, safe as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{model}-{dataset}").strip("-")


def options() -> list[Field]:
    """The fields of `TrainConfig`, in declaration order: one per `zoo train` option."""
    return list(fields(TrainConfig))


def flags(option: Field) -> tuple[str, ...]:
    """An option's command-line flags: those it declares, else `--its-name`."""
    return option.metadata["flags"] or (f"--{option.name.replace('_', '-')}",)


def command_line(settings: dict[str, Any]) -> str:
    """`settings` (field name: value) as `zoo train` options, each by its declared flag: a
    boolean as `--name` or `--no-name` (left out where it has no such flag: off is then its
    default), any other value after its flag."""
    declared = {f.name: flags(f) for f in options()}
    words = []
    for name, value in settings.items():
        on, _, off = declared[name][0].partition("/")
        if isinstance(value, bool):
            words += [on if value else off] if value or off else []
        else:
            words += [on, f"{value:g}" if isinstance(value, float) else str(value)]
    return " ".join(words)


def card_rows(settings: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) of the settings a model card shows, in declaration order; False values
    (an option left off) are left out, except for augmentation."""
    return [
        (f.metadata["card"], settings[f.name])
        for f in options()
        if f.metadata["card"]
        and settings.get(f.name) is not None
        and (settings[f.name] is not False or f.name == "augment")
    ]
