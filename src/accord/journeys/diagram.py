"""A journey graph drawn as SVG, with the people at and through each node."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from markupsafe import Markup, escape

from accord.journeys.analytics import NodeCounts
from accord.journeys.graph import (
    BranchNode,
    JourneyDefinition,
    SendNode,
    SplitNode,
    WaitForAudienceNode,
    WaitForEventNode,
    WaitNode,
    WebhookNode,
)

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 190, 64, 36, 52, 16


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str


def edges(definition: JourneyDefinition) -> list[Edge]:
    out = []
    for node_id, node in definition.nodes.items():
        if isinstance(node, WaitForEventNode):
            out.append(Edge(node_id, node.on_event, node.event))
            if node.on_timeout:
                out.append(Edge(node_id, node.on_timeout, f"after {node.timeout}"))
        elif isinstance(node, WaitForAudienceNode):
            out.append(Edge(node_id, node.on_change, f"{node.change}s {node.audience}"))
            if node.on_timeout:
                out.append(Edge(node_id, node.on_timeout, f"after {node.timeout}"))
        elif isinstance(node, BranchNode):
            out += [Edge(node_id, node.then, "yes"), Edge(node_id, node.otherwise, "no")]
        elif isinstance(node, SplitNode):
            out += [Edge(node_id, p.next, p.name) for p in node.paths]
        else:
            out += [Edge(node_id, target, "") for target in node.targets()]
    return out


def layers(definition: JourneyDefinition) -> list[list[str]]:
    """Nodes by their distance from the start (unreachable ones last)."""
    depth = {definition.start: 0}
    queue = deque([definition.start])
    while queue:
        current = queue.popleft()
        for target in definition.nodes[current].targets():
            if target in definition.nodes and target not in depth:
                depth[target] = depth[current] + 1
                queue.append(target)
    bottom = max(depth.values(), default=0) + 1
    for node_id in definition.nodes:
        depth.setdefault(node_id, bottom)
    out: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for node_id in definition.nodes:
        out[depth[node_id]].append(node_id)
    return [layer for layer in out if layer]


def _caption(definition: JourneyDefinition, node_id: str) -> str:
    node = definition.nodes[node_id]
    if isinstance(node, WaitNode):
        if node.duration:
            return f"wait {node.duration}"
        if node.until_time:
            return f"wait until {node.until_time}"
        if node.until_best_hour:
            return "wait for best hour"
        return f"wait until {node.until_trait}"
    if isinstance(node, WaitForEventNode):
        return f"wait for {node.event}"
    if isinstance(node, WaitForAudienceNode):
        return f"wait to {node.change} {node.audience}"
    if isinstance(node, SendNode):
        return f"send {node.channel}" + (f" · {node.message}" if node.message else "")
    if isinstance(node, WebhookNode):
        return f"webhook {node.destination}"
    if isinstance(node, SplitNode):
        return "A/B test" if node.ab_test else "random split"
    return str(getattr(node, "type", "")).replace("_", " ")


def svg(definition: JourneyDefinition, counts: list[NodeCounts]) -> Markup:
    """The graph, top to bottom; each box says what the node does, how many reached it
    and how many are there now."""
    by_node = {c.node: c for c in counts}
    rows = layers(definition)
    width = max(len(r) for r in rows) * (BOX_W + GAP_X) - GAP_X + 2 * MARGIN
    height = len(rows) * (BOX_H + GAP_Y) - GAP_Y + 2 * MARGIN
    place: dict[str, tuple[int, int]] = {}
    for level, row in enumerate(rows):
        offset = (width - (len(row) * (BOX_W + GAP_X) - GAP_X)) // 2
        for index, node_id in enumerate(row):
            place[node_id] = (offset + index * (BOX_W + GAP_X), MARGIN + level * (BOX_H + GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="journey-graph" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        "<title>Journey graph</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/>'
        "</marker></defs>",
    ]
    for edge in edges(definition):
        if edge.source not in place or edge.target not in place:
            continue
        x1, y1 = place[edge.source]
        x2, y2 = place[edge.target]
        sx, sy, tx, ty = x1 + BOX_W / 2, float(y1 + BOX_H), x2 + BOX_W / 2, float(y2)
        if y2 <= y1:  # a link back up: leave from the side
            sx, sy, tx, ty = x1 + BOX_W, y1 + BOX_H / 2, x2 + BOX_W, y2 + BOX_H / 2
        parts.append(
            f'<line class="edge" x1="{sx}" y1="{sy}" x2="{tx}" y2="{ty}" marker-end="url(#arrow)"/>'
        )
        if edge.label:
            parts.append(
                f'<text class="edge-label" x="{(sx + tx) / 2 + 4}" y="{(sy + ty) / 2}">'
                f"{escape(edge.label[:28])}</text>"
            )
    for node_id, (x, y) in place.items():
        count = by_node.get(node_id)
        reached = count.entered if count else 0
        here = count.waiting_now if count else 0
        start = " start" if node_id == definition.start else ""
        parts.append(
            f'<g class="node{start}" data-node="{escape(node_id)}">'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8"/>'
            f'<text class="node-id" x="{x + 10}" y="{y + 20}">{escape(node_id)}</text>'
            f'<text x="{x + 10}" y="{y + 38}">{escape(_caption(definition, node_id)[:30])}</text>'
            f'<text class="node-counts" x="{x + 10}" y="{y + 56}">'
            f"{reached} reached · {here} here</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text part is escaped above
