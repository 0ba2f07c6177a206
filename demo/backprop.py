"""The Backprop tab: the orange-shopping graph of the backprop tutorial, computed by autograd.

quantity x unit price = cost; cost x tax = total. With 2 oranges at 100 and a tax of 1.1 the
total is 220; one more orange adds 110 (price x tax) and a price one higher adds 2.2
(quantity x tax). Each derivative is the product of the local derivatives along the path from
the total back to the input: d total / d quantity = 1 x 1.1 x 100 = 110.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import torch

from zoo.trust.introspect import GraphNodes, autograd_nodes

INPUTS = ("quantity", "price", "tax")
# Each node's parent on the way to the total (the graph is a tree).
_PARENT = {"quantity": "cost", "price": "cost", "cost": "total", "tax": "total"}


@dataclass
class Oranges:
    """Each node's value, the derivative of the total with respect to it, and the local
    derivative of each edge (child, parent): d parent / d child."""

    values: dict[str, float]
    grads: dict[str, float]
    local: dict[tuple[str, str], float]
    graph: GraphNodes  # the backward graph from the total, leaves named


def oranges(quantity: float, price: float, tax: float) -> Oranges:
    """Forward the graph for the given values, then `total.backward()` for the derivatives;
    the local derivatives of the edges come from `torch.autograd.grad`, node by node."""
    leaves = {
        name: torch.tensor(float(value), dtype=torch.float64, requires_grad=True)
        for name, value in zip(INPUTS, (quantity, price, tax), strict=True)
    }
    cost = leaves["quantity"] * leaves["price"]
    total = cost * leaves["tax"]
    nodes = {**leaves, "cost": cost, "total": total}
    local = {}
    for parent, children in (("cost", ("quantity", "price")), ("total", ("cost", "tax"))):
        grads = torch.autograd.grad(nodes[parent], [nodes[c] for c in children], retain_graph=True)
        local.update({(c, parent): g.item() for c, g in zip(children, grads, strict=True)})
    cost.retain_grad()  # after the local derivatives: autograd.grad would fill it too
    total.backward()
    return Oranges(
        values={k: v.item() for k, v in nodes.items()},
        grads={k: v.grad.item() for k, v in nodes.items() if k != "total"},
        local=local,
        graph=autograd_nodes(total, {id(leaf): name for name, leaf in leaves.items()}),
    )


@dataclass
class ChainPath:
    """The chain rule for one node: the local derivatives from the total down to it."""

    node: str
    factors: list[tuple[str, float]]  # ("d total / d cost", 1.1), ...
    product: float


def chain_paths(result: Oranges) -> list[ChainPath]:
    """For each node below the total, the chain rule written out with the user's values:
    d total / d quantity = (d total / d total) x (d total / d cost) x (d cost / d quantity)."""
    paths = []
    for node in (*INPUTS, "cost"):
        steps, child = [], node
        while child != "total":
            parent = _PARENT[child]
            steps.append((f"d {parent} / d {child}", result.local[(child, parent)]))
            child = parent
        factors = [("d total / d total", 1.0), *reversed(steps)]
        product = 1.0
        for _, value in factors:
            product *= value
        paths.append(ChainPath(node, factors, product))
    return paths


def _number(value: float) -> str:
    return f"{value:.6g}"


def chain_html(result: Oranges) -> str:
    """The chain-rule paths as wrapped HTML lines: symbols, then the user's numbers."""
    rows = []
    for path in chain_paths(result):
        symbols = " x ".join(f"({name})" for name, _ in path.factors)
        numbers = " x ".join(_number(value) for _, value in path.factors)
        rows.append(
            f'<div class="chain-row"><b>d total / d {path.node}</b> = {html.escape(symbols)}'
            f'<br><span class="chain-numbers">= {numbers} = <b>{_number(path.product)}</b>'
            f"</span> (autograd: {_number(result.grads[path.node])})</div>"
        )
    return '<div class="chain">' + "".join(rows) + "</div>"


# Node centres in two layouts: wide (inputs left, total right) and tall (for phones).
_WIDE = (
    (760, 300),
    {
        "quantity": (100, 45),
        "price": (100, 150),
        "tax": (100, 255),
        "cost": (380, 95),
        "total": (660, 175),
    },
)
_TALL = (
    (360, 400),
    {
        "quantity": (90, 45),
        "price": (270, 45),
        "cost": (90, 195),
        "tax": (270, 195),
        "total": (180, 345),
    },
)
_BOX = (170, 70)  # node width and height


def _svg(result: Oranges, layout: tuple, css_class: str) -> str:
    (width, height), places = layout
    w, h = _BOX
    parts = []
    for child, parent in _PARENT.items():
        (x1, y1), (x2, y2) = places[child], places[parent]
        # From the child's box edge to the parent's, labelled with the local derivative.
        (x1, y1), (x2, y2) = _clip(x1, y1, x2, y2, w, h), _clip(x2, y2, x1, y1, w, h)
        parts.append(
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#888" '
            f'stroke-width="1.5" marker-end="url(#arrow-{css_class})"/>'
        )
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        parts.append(
            f'<text x="{mx:.0f}" y="{my - 6:.0f}" class="local" text-anchor="middle">'
            f"x {_number(result.local[(child, parent)])}</text>"
        )
    for name, (x, y) in places.items():
        parts.append(
            f'<rect x="{x - w / 2}" y="{y - h / 2}" width="{w}" height="{h}" rx="10" '
            f'fill="#eef3fb" stroke="#4a6fa5"/><text x="{x}" y="{y - 8}" text-anchor="middle">'
            f"{name} = {_number(result.values[name])}</text>"
        )
        grad = 1.0 if name == "total" else result.grads[name]
        parts.append(
            f'<text x="{x}" y="{y + 20}" class="grad" text-anchor="middle">'
            f"d total / d {name} = {_number(grad)}</text>"
        )
    return (
        f'<svg class="{css_class}" viewBox="0 0 {width} {height}" width="100%" '
        'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="16">'
        "<style>.grad { fill: #c0392b; font-size: 14px } .local { fill: #555; font-size: 14px }"
        f'</style><defs><marker id="arrow-{css_class}" markerWidth="8" markerHeight="8" '
        'refX="8" refY="4" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#888"/></marker></defs>'
        f"{''.join(parts)}</svg>"
    )


def _clip(x1: float, y1: float, x2: float, y2: float, w: float, h: float) -> tuple:
    """Where the segment from (x1, y1) towards (x2, y2) leaves a w x h box centred on (x1, y1)."""
    dx, dy = x2 - x1, y2 - y1
    scale = min(w / 2 / abs(dx) if dx else float("inf"), h / 2 / abs(dy) if dy else float("inf"))
    return x1 + dx * scale, y1 + dy * scale


def diagram(result: Oranges) -> str:
    """The graph as SVG, values forward in black, derivatives of the total in red and each
    edge's local derivative on it; a wide and a tall layout, CSS shows the one that fits."""
    return (
        '<div class="backprop-diagram">'
        + _svg(result, _WIDE, "wide")
        + _svg(result, _TALL, "tall")
        + "</div>"
    )
