"""The hooks a zoo plugin can implement (pluggy project name `zoo`).

Hooks that act on one model receive its `ModelSpec`. They are `firstresult`: the first
non-None answer wins, and later-registered plugins are asked first, so a later plugin
overrides an earlier one. The registry asks a plugin's `zoo_build` only about the models that
plugin declares (one that declares none, an override, about every model, returning None for
those it leaves alone); `zoo_finetune` and `zoo_export` are asked about every model and return
None for a strategy or format they do not handle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from torch import nn

    from zoo.specs import DatasetSpec, ModelSpec, PretrainedWeights

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def zoo_models() -> list[ModelSpec]:
    """Declare the models this plugin provides."""


@hookspec(firstresult=True)
def zoo_build(spec: ModelSpec, num_classes: int, pretrained: bool) -> nn.Module | None:
    """Build `spec`'s model with a `num_classes`-way head; load pretrained weights if asked."""


@hookspec(firstresult=True)
def zoo_pretrained(spec: ModelSpec) -> PretrainedWeights | None:
    """Where `spec`'s pretrained weights come from, and whether they are here. Cheap and free
    of torch: `zoo list` asks it of every model it lists, and `zoo_build(..., pretrained=True)`
    is called only once the weights are here or their `url` is reachable."""


@hookspec(firstresult=True)
def zoo_finetune(spec: ModelSpec, model: nn.Module, strategy: str) -> list[dict] | None:
    """Prepare `model` for a fine-tune `strategy` (`full`, `head`, ...): freeze what stays
    fixed and return the optimizer's parameter groups (a group's `lr_scale`, as in timm,
    multiplies its rate). For `two-stage`, the groups of its second stage: the loop trains
    the `head` strategy's first."""


@hookspec(firstresult=True)
def zoo_export(
    spec: ModelSpec, model: nn.Module, fmt: str, path: Path, meta: dict[str, Any]
) -> Path | None:
    """Write `model` in format `fmt` to `path` and return the path written, or None if this
    plugin does not handle `fmt`."""


@hookspec
def zoo_datasets() -> list[DatasetSpec]:
    """Declare the datasets this plugin provides."""
