"""Looking inside a model, as the LeNet tutorial does: its module tree, its parameter tensors,
and the autograd graph of a forward pass and a loss, walked through `grad_fn.next_functions`."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch
from torch import nn

from zoo.specs import InputSpec


def parameter_shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """Every parameter tensor's name and shape, in `model.parameters()` order."""
    return [(name, tuple(p.shape)) for name, p in model.named_parameters()]


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_loss(model: nn.Module, spec: InputSpec, seed: int = 0) -> torch.Tensor:
    """The tutorial's step: a random input through the model, then MSELoss to a random target."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, spec.channels, spec.size, spec.size, generator=generator)
    output = model(x)
    target = torch.randn(output.shape, generator=generator)
    return nn.MSELoss()(output, target)


def autograd_graph(loss: torch.Tensor, max_nodes: int = 200) -> list[str]:
    """The backward graph from `loss`, one indented line per node, each node shown once."""
    lines: list[str] = []
    seen: set[int] = set()

    def walk(fn, depth: int) -> None:
        if fn is None or len(lines) >= max_nodes:
            return
        label = type(fn).__name__
        if isinstance(getattr(fn, "variable", None), torch.Tensor):
            label += f" {tuple(fn.variable.shape)}"
        if id(fn) in seen:
            lines.append("  " * depth + f"{label} (see above)")
            return
        seen.add(id(fn))
        lines.append("  " * depth + label)
        for child, _ in fn.next_functions:
            walk(child, depth + 1)

    walk(loss.grad_fn, 0)
    return lines


@dataclass
class GraphNodes:
    """The backward graph from a loss as data: a label per node (the root first) and the edges
    (consumer, input), pointing from each node to the nodes it backpropagates into."""

    labels: dict[int, str]
    edges: list[tuple[int, int]]
    truncated: bool


def autograd_nodes(
    loss: torch.Tensor, names: dict[int, str] | None = None, max_nodes: int = 200
) -> GraphNodes:
    """The backward graph from `loss`, breadth first, cut at `max_nodes` nodes. A leaf
    (AccumulateGrad) is labelled by `names[id(tensor)]` (parameter names) when given."""
    names = names or {}
    labels: dict[int, str] = {}
    edges: list[tuple[int, int]] = []
    queue, truncated = deque([loss.grad_fn]), False
    while queue:
        fn = queue.popleft()
        if id(fn) in labels:
            continue
        if len(labels) >= max_nodes:
            truncated = True
            break
        variable = getattr(fn, "variable", None)
        if isinstance(variable, torch.Tensor):
            shape = "x".join(map(str, variable.shape))
            labels[id(fn)] = f"{names.get(id(variable), 'leaf')} {shape}".strip()
        else:
            labels[id(fn)] = type(fn).__name__
        for child, _ in fn.next_functions:
            if child is not None:
                edges.append((id(fn), id(child)))
                queue.append(child)
    edges = [(a, b) for a, b in edges if b in labels]
    return GraphNodes(labels, edges, truncated)
