"""The Inspect tab, after the LeNet tutorial: a model's module tree, its parameter tensors, the
autograd graph of a forward pass and a loss, and one parameter's gradient before and after
`backward`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from zoo.demo.intake import shown
from zoo.errors import ZooError
from zoo.introspect import autograd_graph, forward_loss, parameter_count, parameter_shapes
from zoo.registry import Registry
from zoo.specs import ModelSpec

NUM_CLASSES = 10
GRAPH_NODES = 200  # the autograd graph shown is cut here (a ResNet50's has thousands)


@dataclass
class Inspection:
    """What the Inspect tab shows of one model."""

    tree: str
    parameters: list[list[str | int]]
    summary: str
    graph: str


def _spec(registry: Registry, name: Any) -> ModelSpec:
    """The registered model `name`, or a one-line ZooError naming what the user sent."""
    if not isinstance(name, str) or name not in registry.models:
        raise ZooError(f"no model {shown(str(name))!r}: choose one from the list")
    return registry.model(name)


def inspect_model(registry: Registry, name: Any) -> Inspection:
    """The module tree, parameter table and autograd graph of model `name` (10 classes)."""
    spec = _spec(registry, name)
    model = registry.build(spec, num_classes=NUM_CLASSES)
    shapes = parameter_shapes(model)
    rows = [[param, str(list(shape)), int(torch.Size(shape).numel())] for param, shape in shapes]
    summary = f"{len(shapes)} parameter tensors, {parameter_count(model):,} parameters"
    lines = autograd_graph(forward_loss(model, spec.input), max_nodes=GRAPH_NODES)
    if len(lines) >= GRAPH_NODES:
        lines.append(f"... (the first {GRAPH_NODES} nodes)")
    return Inspection(str(model), rows, summary, "\n".join(lines))


def gradient_before_after(registry: Registry, name: Any, parameter: Any) -> tuple[str, str]:
    """`parameter`'s gradient after `zero_grad()` and after `loss.backward()`, as printed."""
    spec = _spec(registry, name)
    model = registry.build(spec, num_classes=NUM_CLASSES)
    params = dict(model.named_parameters())
    if not isinstance(parameter, str) or parameter not in params:
        raise ZooError(f"{name} has no parameter {shown(str(parameter))!r}")
    loss = forward_loss(model, spec.input)
    loss.backward(retain_graph=True)  # gradient buffers exist, as after an earlier step
    model.zero_grad(set_to_none=False)
    before = str(params[parameter].grad)
    loss.backward()
    return before, str(params[parameter].grad)
