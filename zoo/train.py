"""`zoo train`: fine-tune a model on a dataset and write its self-describing weights file.

One loop, read top to bottom: data decoded once into uint8 tensors, each batch prepared on the
device, a OneCycle (or cosine, or constant) schedule, the test accuracy after every epoch.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from zoo.datasets import ImageSplits
from zoo.errors import ZooError
from zoo.preprocess import prepare
from zoo.registry import Registry
from zoo.specs import InputSpec, ModelSpec
from zoo.weights import save

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "none")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run; a model's `TrainDefaults` fill what is not given."""

    dataset: str = "digits"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adamw"
    schedule: str = "onecycle"
    weight_decay: float = 0.0
    strategy: str = "full"
    pretrained: bool = False
    seed: int = 0
    limit: int | None = None
    device: str = "auto"

    @classmethod
    def for_model(cls, spec: ModelSpec, **overrides: Any) -> TrainConfig:
        """The model's defaults, overridden by every option that is not None."""
        names = {f.name for f in fields(cls)}
        given = {k: v for k, v in overrides.items() if v is not None and k in names}
        return cls(**{**asdict(spec.defaults), **given})

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ZooError(f"--{name.replace('_', '-')} must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ZooError("--limit must be at least 1")
        if self.lr <= 0:
            raise ZooError("--lr must be positive")
        if self.optimizer not in OPTIMIZERS:
            raise ZooError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ZooError(f"unknown schedule {self.schedule!r}; choose from {SCHEDULES}")


@dataclass
class TrainResult:
    path: Path
    accuracy: float
    seconds: float


def pick_device(name: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ZooError("--device cuda: no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ZooError("--device mps: no MPS device is available")
    return torch.device(name)


def make_optimizer(config: TrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    optimizer = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return optimizer(groups, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(config: TrainConfig, optimizer, total_steps: int):
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=total_steps)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def freeze_frozen_norms(model: nn.Module) -> None:
    """Keep the running statistics of frozen batch-norm layers fixed (eval mode)."""
    for module in model.modules():
        if isinstance(module, _BatchNorm) and not any(p.requires_grad for p in module.parameters()):
            module.eval()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    spec: InputSpec,
    device: torch.device,
    batch_size: int = 512,
) -> torch.Tensor:
    """The model's predicted class for every image."""
    model.eval()
    predictions = [
        model(prepare(images[i : i + batch_size].to(device), spec)).argmax(1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(predictions) if predictions else labels.new_empty(0)


def train(
    registry: Registry,
    spec: ModelSpec,
    config: TrainConfig,
    out: Path,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune `spec`'s model as `config` says; write the weights to `out`."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    dataset, root = registry.dataset(config.dataset)
    data: ImageSplits = dataset.load(root=root, download=False)
    if config.limit:
        data = data.limit(config.limit)

    device = pick_device(config.device)
    model = registry.build(spec, num_classes=len(data.classes), pretrained=config.pretrained)
    groups = registry.finetune(spec, model, config.strategy)
    if config.strategy == "head" and not config.pretrained and spec.pretrained:
        warnings.warn(
            f"training only the head of {spec.name} on a random backbone; add --pretrained",
            stacklevel=2,
        )
    model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(config, groups)
    steps_per_epoch = math.ceil(len(data.train_labels) / config.batch_size)
    schedule = make_schedule(config, optimizer, steps_per_epoch * config.epochs)
    order = torch.Generator().manual_seed(config.seed)

    bar = _Progress(config.epochs * steps_per_epoch, enabled=progress)
    accuracy = 0.0
    for epoch in range(1, config.epochs + 1):
        model.train()
        freeze_frozen_norms(model)
        permutation = torch.randperm(len(data.train_labels), generator=order)
        for step in range(steps_per_epoch):
            index = permutation[step * config.batch_size : (step + 1) * config.batch_size]
            x = prepare(data.train_images[index].to(device), spec.input)
            y = data.train_labels[index].to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.advance(f"epoch {epoch}/{config.epochs} loss {loss.item():.3f}")
        predicted = evaluate(model, data.test_images, data.test_labels, spec.input, device)
        accuracy = (predicted == data.test_labels).float().mean().item()
        bar.advance(f"epoch {epoch}/{config.epochs} test accuracy {accuracy:.2%}", steps=0)
    bar.close()

    meta = {
        "model": spec.name,
        "plugin": spec.plugin,
        "classes": data.classes,
        "input": spec.input.to_dict(),
        "dataset": config.dataset,
        "metrics": {"test_accuracy": accuracy, "test_images": len(data.test_labels)},
        "settings": asdict(config),
    }
    path = save(out, model, meta)
    return TrainResult(path, accuracy, time.perf_counter() - started)


class _Progress:
    """A rich progress bar over all steps of a run (a no-op when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=False,
            )
            self.task = self.bar.add_task("training", total=total)
            self.bar.start()

    def advance(self, description: str, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=steps, description=description)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
