"""An autograd graph drawn as SVG, in layers: the inputs and parameters (leaves) at the top,
the loss at the bottom, arrows in the direction the forward pass ran (the backward pass
follows them upwards)."""

from __future__ import annotations

import html
import itertools
from graphlib import TopologicalSorter

from zoo.trust.introspect import GraphNodes

NODE_W, NODE_H = 90, 30  # a node's box: its least width, and its height
CHAR_W, PAD = 7, 10  # a label character's width (sans-serif at FONT), the space either side
MAX_LABEL = 32  # characters shown of a label (the whole one is the box's tooltip)
GAP_X, GAP_Y = 14, 26  # between boxes in a layer, and between layers
FONT = 12
ROOT_FILL, LEAF_FILL, FILL = "#fde8d7", "#e3f4e1", "#eef3fb"
_IDS = itertools.count()  # marker ids unique in the page: a hidden tab's would not draw


def layers(graph: GraphNodes) -> list[list[int]]:
    """The nodes in layers from the root: each node one below its deepest consumer, so a
    parameter sits just above the operation that uses it; within a layer, nodes are ordered
    by the mean position of their consumers (fewer crossings)."""
    consumers: dict[int, list[int]] = {node: [] for node in graph.labels}
    for consumer, node in graph.edges:
        consumers[node].append(consumer)
    depth: dict[int, int] = {}
    for node in TopologicalSorter(consumers).static_order():  # consumers come first
        depth[node] = max((depth[c] + 1 for c in consumers[node]), default=0)
    rows: list[list[int]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in graph.labels:  # breadth-first order: a stable start
        rows[depth[node]].append(node)
    position: dict[int, float] = {}
    for row in rows:
        row.sort(key=lambda n: _mean([position[c] for c in consumers[n]]))
        position.update({node: i - (len(row) - 1) / 2 for i, node in enumerate(row)})
    return rows


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 3] + "..."


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def svg(graph: GraphNodes, caption: str = "") -> str:
    """The graph as an SVG, each box as wide as its label: at its natural size where it
    fits, scaled down to the width it is given where it does not."""
    rows = layers(graph)[::-1]  # leaves first, the root last
    shown = {node: _short(label) for node, label in graph.labels.items()}
    widths = {node: max(NODE_W, len(text) * CHAR_W + 2 * PAD) for node, text in shown.items()}
    spans = [sum(widths[node] for node in row) + GAP_X * (len(row) + 1) for row in rows]
    width = max(spans, default=GAP_X)
    height = len(rows) * (NODE_H + GAP_Y) + GAP_Y
    centre: dict[int, tuple[float, float]] = {}
    for r, (row, span) in enumerate(zip(rows, spans, strict=True)):
        x = (width - span) / 2 + GAP_X
        y = GAP_Y + r * (NODE_H + GAP_Y) + NODE_H / 2
        for node in row:
            centre[node] = (x + widths[node] / 2, y)
            x += widths[node] + GAP_X
    marker = f"head{next(_IDS)}"
    parts = []
    for consumer, node in graph.edges:  # forward direction: from the input to its consumer
        (x1, y1), (x2, y2) = centre[node], centre[consumer]
        parts.append(
            f'<line x1="{x1:.0f}" y1="{y1 + NODE_H / 2:.0f}" x2="{x2:.0f}" '
            f'y2="{y2 - NODE_H / 2:.0f}" stroke="#999" marker-end="url(#{marker})"/>'
        )
    root = next(iter(graph.labels), None)
    leaves = {node for node in graph.labels} - {consumer for consumer, _ in graph.edges}
    for node, (x, y) in centre.items():
        fill = ROOT_FILL if node == root else LEAF_FILL if node in leaves else FILL
        w = widths[node]
        parts.append(
            f'<g><title>{html.escape(graph.labels[node])}</title><rect x="{x - w / 2:.0f}" '
            f'y="{y - NODE_H / 2:.0f}" width="{w:.0f}" height="{NODE_H}" rx="6" '
            f'fill="{fill}" stroke="#4a6fa5"/><text x="{x:.0f}" y="{y + FONT / 3:.0f}" '
            f'text-anchor="middle">{html.escape(shown[node])}</text></g>'
        )
    note = " (cut: the first nodes only)" if graph.truncated else ""
    return (
        f'<figure class="graph-view"><div class="graph-fit"><svg width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="{FONT}">'
        f'<defs><marker id="{marker}" markerWidth="7" markerHeight="7" refX="7" refY="3.5" '
        'orient="auto"><path d="M0,0 L7,3.5 L0,7 z" fill="#999"/></marker></defs>'
        f"{''.join(parts)}</svg></div><figcaption>{html.escape(caption + note)}</figcaption>"
        "</figure>"
    )
