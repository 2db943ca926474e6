"""The event flow as a graph: sources → event types → functions → emitted types.

Built from the project's specs (sources and their sinks, triggers and the
``type`` their filters name, functions' ``emits``) and from what was seen on
the buses (a function's output carries ``source: /cumulo/functions/<name>``),
with live counts on the edges: a trigger's deliveries, events emitted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from html import escape
from typing import Any

from cumulo.events.bus.base import Message
from cumulo.spec import Project
from cumulo.spec.models import Filter

from .data import emitted_by

EXTERNAL = "source:external"
NODE_W, NODE_H, COL_W, ROW_H, PAD = 170, 34, 215, 58, 20


@dataclass
class Graph:
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def node(self, kind: str, name: str) -> str:
        key = f"{kind}:{name}"
        self.nodes.setdefault(key, {"id": key, "kind": kind, "label": name})
        return key

    def edge(self, a: str, b: str, count: int = 0, label: str = "") -> None:
        entry = self.edges.setdefault((a, b), {"from": a, "to": b, "count": 0, "label": label})
        entry["count"] += count

    def json(self) -> dict[str, Any]:
        return {"nodes": list(self.nodes.values()), "edges": list(self.edges.values())}


def filter_types(filters: list[Filter]) -> list[str]:
    """The event types a trigger's filters name (exact ``type``, or ``prefix*``)."""
    found: list[str] = []
    for f in filters:
        if f.exact and "type" in f.exact:
            found.append(f.exact["type"])
        if f.prefix and "type" in f.prefix:
            found.append(f.prefix["type"] + "*")
        for nested in (f.all or []) + (f.any or []):
            found.extend(filter_types([nested]))
    return found


def build(project: Project, status: dict[str, Any], messages: list[Message]) -> Graph:
    graph = Graph()
    delivered = {t["name"]: t["delivered"] for t in status.get("triggers", [])}
    for name in project.functions:
        graph.node("function", name)
    for source in project.sources.values():
        _add_source(graph, source, delivered)
    for trigger in project.all_triggers().values():
        function = graph.node("function", trigger.spec.function)
        classic = (trigger.spec.filter or {}).get("attributes", {}).get("type")
        for type_ in filter_types(trigger.spec.filters) + ([classic] if classic else []):
            graph.edge(
                graph.node("type", type_), function, delivered.get(trigger.name, 0), trigger.name
            )
    for emitter in project.functions.values():
        for type_ in emitter.spec.emits:
            graph.edge(graph.node("function", emitter.name), graph.node("type", type_))
    _add_observed(graph, messages)
    return graph


def _add_source(graph: Graph, source: Any, delivered: dict[str, int]) -> None:
    node = graph.node("source", source.name)
    sink = source.spec.sink
    if sink.function:
        implied = f"{source.name}-to-{sink.function}"
        graph.edge(node, graph.node("function", sink.function), delivered.get(implied, 0), implied)
    elif source.spec.type:
        graph.edge(node, graph.node("type", source.spec.type))


def _add_observed(graph: Graph, messages: list[Message]) -> None:
    """Edges for what was seen: function → type it emitted; publisher → type nobody emits."""
    counts = Counter((emitted_by(m), m.event.type) for m in messages)
    for (function, type_), count in counts.items():
        if function is not None and f"function:{function}" in graph.nodes:
            graph.edge(f"function:{function}", graph.node("type", type_), count)
    produced = {b for (a, b) in graph.edges if not a.startswith("type:")}
    for node in list(graph.nodes):
        consumed = any(a == node for a, _ in graph.edges)
        if node.startswith("type:") and consumed and node not in produced:
            external = sum(n for (f, t), n in counts.items() if t == node[5:] and f is None)
            graph.nodes.setdefault(
                EXTERNAL, {"id": EXTERNAL, "kind": "source", "label": "publishers"}
            )
            graph.edge(EXTERNAL, node, external)


def ranks(graph: Graph) -> dict[str, int]:
    """Columns: each node right of everything that feeds it (cycles are cut)."""
    rank = {node: 0 for node in graph.nodes}
    for _ in range(len(graph.nodes)):
        changed = False
        for a, b in graph.edges:
            if rank[b] < rank[a] + 1 and rank[a] + 1 < len(graph.nodes):
                rank[b], changed = rank[a] + 1, True
        if not changed:
            break
    return rank


def layout(graph: Graph) -> dict[str, tuple[int, int]]:
    columns: dict[int, list[str]] = {}
    for node, column in sorted(ranks(graph).items(), key=lambda item: item[1]):
        columns.setdefault(column, []).append(node)
    _order(graph, columns)
    return {
        node: (PAD + column * COL_W, PAD + row * ROW_H)
        for column, nodes in columns.items()
        for row, node in enumerate(nodes)
    }


def _order(graph: Graph, columns: dict[int, list[str]]) -> None:
    """Each column sorted by where its feeders sit (fewer crossings), unfed nodes last."""
    row: dict[str, float] = {}
    for column in sorted(columns):

        def place(node: str) -> float:
            feeders = [row[a] for a, b in graph.edges if b == node and a in row]
            return sum(feeders) / len(feeders) if feeders else float(len(graph.nodes))

        columns[column].sort(key=place)
        row.update({node: index for index, node in enumerate(columns[column])})


def svg(graph: Graph) -> str:
    """The graph as inline SVG; edge counts have ids (``edge-<from>-><to>``) to update live."""
    at = layout(graph)
    width = max((x for x, _ in at.values()), default=0) + NODE_W + PAD
    height = max((y for _, y in at.values()), default=0) + NODE_H + PAD
    parts = [
        f'<svg class="graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' xmlns="http://www.w3.org/2000/svg" role="img" aria-label="event flow">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8a94a6"/>'
        "</marker></defs>",
    ]
    parts += [_edge_svg(edge, at) for edge in graph.edges.values()]
    parts += [_node_svg(node, at[node["id"]]) for node in graph.nodes.values()]
    return "".join(parts) + "</svg>"


def _edge_svg(edge: dict[str, Any], at: dict[str, tuple[int, int]]) -> str:
    (x1, y1), (x2, y2) = at[edge["from"]], at[edge["to"]]
    x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
    mid = (x1 + x2) / 2
    key = escape(f"edge-{edge['from']}->{edge['to']}")
    title = escape(edge["label"] or f"{edge['from']} → {edge['to']}")
    return (
        f'<g class="edge"><title>{title}</title><path d="M{x1},{y1} C{mid},{y1} {mid},{y2}'
        f' {x2},{y2}" marker-end="url(#arrow)"/><text id="{key}" class="count" x="{mid}"'
        f' y="{(y1 + y2) / 2 - 4}">{edge["count"]}</text></g>'
    )


def _node_svg(node: dict[str, str], at: tuple[int, int]) -> str:
    x, y = at
    label = node["label"].removeprefix("dev.cumulo.")
    return (
        f'<g class="node {node["kind"]}" data-id="{escape(node["id"])}"><title>'
        f'{escape(node["label"])}</title><rect x="{x}" y="{y}" width="{NODE_W}"'
        f' height="{NODE_H}" rx="6"/><text x="{x + NODE_W / 2}" y="{y + NODE_H / 2 + 4}">'
        f"{escape(label[:24])}</text></g>"
    )
