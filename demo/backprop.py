"""The Backprop tab: the orange-shopping graph of the backprop tutorial, computed by autograd.

quantity x unit price = cost; cost x tax = total. With 2 oranges at 100 and a tax of 1.1 the
total is 220; one more orange adds 110 (price x tax) and a price one higher adds 2.2
(quantity x tax).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo.introspect import autograd_graph


@dataclass
class Oranges:
    """Each node's value and the partial derivative of the total with respect to it."""

    values: dict[str, float]
    grads: dict[str, float]
    graph: str


def oranges(quantity: float, price: float, tax: float) -> Oranges:
    """Forward the graph for the given values, then `total.backward()` for the derivatives."""
    leaves = {
        name: torch.tensor(float(value), dtype=torch.float64, requires_grad=True)
        for name, value in (("quantity", quantity), ("price", price), ("tax", tax))
    }
    cost = leaves["quantity"] * leaves["price"]
    cost.retain_grad()
    total = cost * leaves["tax"]
    total.backward()
    nodes = {**leaves, "cost": cost}
    return Oranges(
        values={**{k: v.item() for k, v in nodes.items()}, "total": total.item()},
        grads={k: v.grad.item() for k, v in nodes.items()},
        graph="\n".join(autograd_graph(total)),
    )


# Where each node sits in the diagram, and the edges between them.
_LAYOUT = {"quantity": (90, 40), "price": (90, 140), "tax": (90, 240), "cost": (330, 90)}
_TOTAL = (570, 165)
_EDGES = (("quantity", "cost"), ("price", "cost"), ("cost", "total"), ("tax", "total"))


def diagram(result: Oranges) -> str:
    """The graph as an SVG: values forward in black, derivatives of the total in red."""
    places = {**_LAYOUT, "total": _TOTAL}
    parts = []
    for a, b in _EDGES:
        (x1, y1), (x2, y2) = places[a], places[b]
        parts.append(
            f'<line x1="{x1 + 75}" y1="{y1}" x2="{x2 - 80}" y2="{y2}" stroke="#888" '
            'marker-end="url(#arrow)"/>'
        )
    for name, (x, y) in places.items():
        parts.append(
            f'<rect x="{x - 75}" y="{y - 22}" width="150" height="34" rx="8" fill="#eef3fb" '
            f'stroke="#4a6fa5"/><text x="{x}" y="{y}" text-anchor="middle">'
            f"{name} = {result.values[name]:.4g}</text>"
        )
        if name in result.grads:
            parts.append(
                f'<text x="{x}" y="{y + 32}" fill="#c0392b" text-anchor="middle">'
                f"d total / d {name} = {result.grads[name]:.4g}</text>"
            )
    return (
        '<svg viewBox="0 0 680 290" style="max-width: 720px" xmlns="http://www.w3.org/2000/svg" '
        'font-family="sans-serif" font-size="14"><defs><marker id="arrow" markerWidth="8" '
        'markerHeight="8" refX="8" refY="4" orient="auto"><path d="M0,0 L8,4 L0,8 z" '
        f'fill="#888"/></marker></defs>{"".join(parts)}</svg>'
    )
