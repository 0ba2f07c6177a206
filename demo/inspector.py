"""The Inspect tab, after the LeNet tutorial: a model's module tree, its parameter tensors,
the autograd graph of a forward pass and a loss (drawn, leaves named by parameter), and one
parameter's gradient after `zero_grad()` and after `backward()`, drawn as images."""

from __future__ import annotations

import io
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import nn

from zoo.demo import graphview
from zoo.demo.intake import shown
from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.specs import ModelSpec
from zoo.trust.introspect import autograd_nodes, forward_loss, parameter_count, parameter_shapes

NUM_CLASSES = 10
KEPT_MODELS = 3  # built models kept for the next request
GRAPH_NODES = 200  # the autograd graph drawn is cut here (a ResNet50's has thousands)
MAX_FILTERS, MAX_CHANNELS = 16, 8  # the conv filters and input channels drawn
MIN_WIDTH = 3.4  # inches: a conv weight's picture is at least this wide, for its title
TITLE_CHARS = 11  # characters of a 10-point title an inch

# How each view maps onto the LeNet tutorial's steps.
TUTORIAL = {
    "tree": "**Define the network.** `print(net)` lists the layers the tutorial's `__init__` "
    "creates; `forward` wires them together, and autograd will derive `backward` from it.",
    "parameters": "**The learnable parameters**, `net.parameters()`: each layer's weight and "
    "bias tensors. These are what the update step changes.",
    "graph": "**Forward, then the loss.** `output = net(input)` and "
    "`loss = nn.MSELoss()(output, target)` record every operation; following `loss.grad_fn` "
    "back from the loss (bottom) reaches each parameter (green, top of its branch).",
    "gradient": "**zero_grad, backward, update.** `net.zero_grad()` sets every gradient to "
    "zero (left), because `backward` adds to what is there; `loss.backward()` fills them "
    "(right); the update step, `weight = weight - learning_rate * weight.grad` "
    "(`optimizer.step()`), moves each weight against its gradient.",
}


@dataclass
class Inspection:
    """What the Inspect tab shows of one model."""

    tree: str
    parameters: list[list[str | int]]
    summary: str
    graph: str  # SVG in HTML


@dataclass
class Gradients:
    """A parameter's gradient after `zero_grad()` and after `backward()`, drawn, and a line
    of figures on the second."""

    before: Image.Image
    after: Image.Image
    summary: str


def gradient_before_after(spec: ModelSpec, model: nn.Module, parameter: Any) -> Gradients:
    """`parameter`'s gradient after `zero_grad()` and after `loss.backward()` of `model`:
    per-filter heat maps for a conv weight, a histogram otherwise."""
    params = dict(model.named_parameters())
    if not isinstance(parameter, str) or parameter not in params:
        raise ZooError(f"{spec.name} has no parameter {shown(str(parameter))!r}")
    loss = forward_loss(model, spec.input)
    loss.backward(retain_graph=True)  # gradient buffers exist, as after an earlier step
    model.zero_grad(set_to_none=False)
    before = params[parameter].grad.clone()
    loss.backward()
    after = params[parameter].grad
    summary = (
        f"`{parameter}` {list(after.shape)}: after `backward()` the gradient's L2 norm is "
        f"{after.norm():.4g}, its largest |value| {after.abs().max():.4g}, its mean "
        f"{after.mean():.3g}; after `zero_grad()` every one of its {after.numel():,} values "
        f"was {before.abs().max():g}."
    )
    title = f"{parameter}.grad"
    before_image = draw(before, f"{title}\nafter zero_grad()")
    return Gradients(before_image, draw(after, f"{title}\nafter backward()"), summary)


def _wrapped(title: str, width: float) -> str:
    """`title`, each line wrapped to fit a figure `width` inches wide at 10 points."""
    per_line = max(12, int(width * TITLE_CHARS))
    lines = title.split("\n")
    return "\n".join(textwrap.fill(line, per_line, break_on_hyphens=False) for line in lines)


class Inspector:
    """The models the Inspect tab shows: only those on offer (the ones `zoo list` shows, and
    the architectures of the shelf's usable files), each built once with 10 classes when it
    is within `max_parameters` (counted on the meta device first, nothing allocated), and
    the last few kept; a model's views are computed one request at a time."""

    def __init__(
        self, registry: Registry, shelf_models: Callable[[], set[str]], max_parameters: int
    ) -> None:
        self.registry = registry
        self.shelf_models = shelf_models
        self.max_parameters = max_parameters
        self._built: OrderedDict[str, tuple[ModelSpec, nn.Module, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def listed(self) -> list[str]:
        """The models `zoo list` shows (no weights file read)."""
        return [spec.name for spec in self.registry.find()]

    def names(self) -> list[str]:
        """The models on offer: `zoo list`'s, then the shelf's others, by name."""
        listed = self.listed()
        others = sorted(self.shelf_models() - set(listed))
        return [*listed, *(name for name in others if name in self.registry.models)]

    def inspect(self, name: Any) -> Inspection:
        """The module tree, parameter table and drawn autograd graph of model `name`."""
        spec, model, lock = self._model(name)
        with lock:
            shapes = parameter_shapes(model)
            rows = [[p, str(list(shape)), int(torch.Size(shape).numel())] for p, shape in shapes]
            summary = f"{len(shapes)} parameter tensors, {parameter_count(model):,} parameters"
            names = {id(p): param for param, p in model.named_parameters()}
            loss = forward_loss(model, spec.input)
            nodes = autograd_nodes(loss, names, max_nodes=GRAPH_NODES)
        caption = f"The autograd graph of MSELoss({name}(randn), randn): {len(nodes.labels)} nodes"
        return Inspection(str(model), rows, summary, graphview.svg(nodes, caption))

    def gradients(self, name: Any, parameter: Any) -> Gradients:
        """`parameter`'s gradient after `zero_grad()` and after `loss.backward()`."""
        spec, model, lock = self._model(name)
        with lock:
            return gradient_before_after(spec, model, parameter)

    def _model(self, name: Any) -> tuple[ModelSpec, nn.Module, threading.Lock]:
        if not isinstance(name, str) or (name not in self.listed() and name not in self.names()):
            raise ZooError(f"no model {shown(str(name))!r}: choose one from the list")
        with self._lock:
            if name in self._built:
                self._built.move_to_end(name)
                return self._built[name]
            spec = self.registry.model(name)
            with torch.device("meta"):
                count = parameter_count(self.registry.build(spec, num_classes=NUM_CLASSES))
            if count > self.max_parameters:
                raise ZooError(
                    f"{name} has {count / 1e6:,.0f}M parameters, above this demo's budget of "
                    f"{self.max_parameters / 1e6:,.0f}M: zoo demo --max-params sets it"
                )
            while len(self._built) >= KEPT_MODELS:
                self._built.popitem(last=False)
            built = (spec, self.registry.build(spec, num_classes=NUM_CLASSES), threading.Lock())
            self._built[name] = built
            return built


def draw(grad: torch.Tensor, title: str) -> Image.Image:
    """A gradient as a picture: a conv weight (out, in, h, w) as a grid of heat maps, one per
    filter and input channel, on one colour scale centred on zero; any other tensor as a
    histogram of its values with its norms."""
    from matplotlib.figure import Figure

    grad = grad.detach().float()
    if grad.dim() == 4:
        shown = grad[:MAX_FILTERS, :MAX_CHANNELS]
        filters, channels, h, w = shown.shape
        # One mosaic: a row per filter, a column per input channel, one pixel of gap between.
        mosaic = torch.full((filters * (h + 1) - 1, channels * (w + 1) - 1), float("nan"))
        for f in range(filters):
            for c in range(channels):
                mosaic[f * (h + 1) : f * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = shown[f, c]
        width = max(MIN_WIDTH, 0.5 * channels + 2.6)
        figure = Figure(figsize=(width, 0.45 * filters + 1.6), layout="constrained")
        ax = figure.subplots()
        limit = shown.abs().max().item() or 1.0  # all zero after zero_grad()
        image = ax.imshow(mosaic.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(channels)], range(channels))
        ax.set_yticks([f * (h + 1) + (h - 1) / 2 for f in range(filters)], range(filters))
        ax.set(xlabel="input channel", ylabel="filter")
        ax.tick_params(length=0, labelsize=8)
        for side in ax.spines.values():
            side.set_visible(False)
        figure.colorbar(image, ax=ax, shrink=0.8)
        cut = "\n(the first filters and channels)" if shown.shape != grad.shape else ""
        figure.suptitle(_wrapped(f"{title}{cut}", width), fontsize=10)
    else:
        width = 5.5
        figure = Figure(figsize=(width, 3.2), layout="constrained")
        ax = figure.subplots()
        values = grad.flatten().numpy()
        nonzero = bool(values.any())
        ax.hist(values, bins=min(50, max(5, values.size // 4)), color="#4a6fa5", log=nonzero)
        ax.set(xlabel="gradient value", ylabel="count (log scale)" if nonzero else "count")
        norms = f"L2 norm {grad.norm():.3g}, max |g| {grad.abs().max():.3g}"
        figure.suptitle(_wrapped(f"{title}\n{norms}", width), fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return Image.open(io.BytesIO(buffer.getvalue()))
