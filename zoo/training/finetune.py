"""The core's last-resort `zoo_finetune`: `full` trains everything, `head` only `spec.head`,
and `two-stage`, the second of its stages, everything again (the loop trains the `head`
strategy's groups first, then these at layer-wise decaying rates: `layer_decay`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.specs import ModelSpec
from zoo.training.config import TWO_STAGE

if TYPE_CHECKING:
    from torch import nn


def head_module(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """The classifier head named by `spec.head`."""
    try:
        return model.get_submodule(spec.head)
    except AttributeError:
        raise ZooError(f"model {spec.name!r} has no head module {spec.head!r}") from None


@hookimpl(trylast=True)
def zoo_finetune(spec: ModelSpec, model: nn.Module, strategy: str) -> list[dict] | None:
    if strategy in ("full", TWO_STAGE):
        model.requires_grad_(True)
        return [{"params": list(model.parameters())}]
    if strategy == "head":
        model.requires_grad_(False)
        head = head_module(model, spec).requires_grad_(True)
        return [{"params": list(head.parameters())}]
    return None
