"""Batch identity on the engine: connected components of the identity graph in Ibis.

Components are found by iterative minimum-label propagation with pointer jumping:
every identifier starts labelled by itself, then repeatedly takes the smallest label
among itself and its neighbours, and then the label of its label. The loop stops when
no label changes. The steps are plain joins and group-bys, so DuckDB and Spark run
the same expressions.

Identifiers are numbered first, in Arrow before the engine sees them, in their sort
order (so the smallest number is the smallest identifier): the rounds join and group
integers, not long strings. A label
never grows, so an unchanged sum of labels means no label changed: each round checks
that with one scan of its result instead of a join with the previous round.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, select

from accord.engine.connection import connect
from accord.engine.tables import drop, materialise, register
from accord.identity.models import identity_edges
from accord.identity.rules import IdentityRules
from accord.profiles.models import profile_identifiers

MAX_ROUNDS = 200
SEPARATOR = "\x1f"


def components(backend: Any, nodes: pa.Table, edges: pa.Table) -> dict[str, str]:
    """Each node's component label (the smallest node id in its component).

    `nodes` has a string column `node`; `edges` has string columns `src` and `dst`.
    """
    # An edge's ends are identifiers even when `nodes` does not list them.
    names = pc.unique(
        pa.chunked_array(
            [*_strings(nodes, "node"), *_strings(edges, "src"), *_strings(edges, "dst")],
            pa.string(),
        )
    )
    names = names.take(pc.sort_indices(names))
    numbered = pa.table(
        {
            "src": pc.cast(pc.index_in(_column(edges, "src"), value_set=names), pa.int64()),
            "dst": pc.cast(pc.index_in(_column(edges, "dst"), value_set=names), pa.int64()),
        }
    )
    edge_table = register(backend, numbered, name="accord_identity_edges")
    both_ways = edge_table.select(src=edge_table.src, dst=edge_table.dst).union(
        edge_table.select(src=edge_table.dst, dst=edge_table.src)
    )
    neighbours = materialise(
        backend,
        both_ways.filter(both_ways.src != both_ways.dst).distinct(),
        name="accord_neighbours",
    )
    every = pa.array(range(len(names)), pa.int64())
    labels = register(backend, pa.table({"node": every, "label": every}), name="accord_labels_0")
    total = _label_sum(backend, labels)
    for round_ in range(1, MAX_ROUNDS + 1):
        updated = materialise(backend, _step(labels, neighbours), name=f"accord_labels_{round_}")
        drop(backend, f"accord_labels_{round_ - 1}")
        labels = updated
        before, total = total, _label_sum(backend, labels)
        if total == before:
            break
    else:
        raise RuntimeError(f"components did not settle in {MAX_ROUNDS} rounds")
    result = backend.to_pyarrow(labels)
    return dict(
        zip(
            names.take(result["node"]).to_pylist(),
            names.take(result["label"]).to_pylist(),
            strict=True,
        )
    )


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    return pc.cast(table[name], pa.string())


def _strings(table: pa.Table, name: str) -> list[pa.Array]:
    return list(_column(table, name).chunks)


def _label_sum(backend: Any, labels: Any) -> int:
    return int(backend.to_pyarrow(labels.label.sum()).as_py() or 0)


def _step(labels: Any, neighbours: Any) -> Any:
    """One round: take the smallest neighbouring label, then jump to the label's label."""
    offered = neighbours.join(labels, neighbours.dst == labels.node).select(
        node=neighbours.src, label=labels.label
    )
    smallest = (
        labels.select("node", "label")
        .union(offered)
        .group_by("node")
        .aggregate(label=lambda t: t.label.min())
    )
    parent = smallest.view()
    jumped = smallest.join(parent, smallest.label == parent.node).select(
        node=smallest.node, label=ibis.least(smallest.label, parent.label)
    )
    return jumped


def node_id(kind: str, value: str) -> str:
    return f"{kind}{SEPARATOR}{value}"


def split_node(node: str) -> tuple[str, str]:
    kind, value = node.split(SEPARATOR, 1)
    return kind, value


@dataclass
class GraphCheck:
    """Profiles as the incremental path built them, next to the batch components."""

    identifiers: int
    edges: int
    profiles: int
    components: int
    # Components that do not match one profile exactly, each as its identifiers.
    mismatched: list[list[str]] = field(default_factory=list)
    # Guardrails a component breaks (two hard ids, a type over its limit).
    violations: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.mismatched and not self.violations


def guardrail_violations(
    groups: dict[str, list[tuple[str, str]]], rules: IdentityRules
) -> list[str]:
    out = []
    for label, keys in sorted(groups.items()):
        per_kind: dict[str, int] = defaultdict(int)
        for kind, _ in keys:
            per_kind[kind] += 1
        for kind in rules.hard_kinds:
            if per_kind[kind] > 1:
                out.append(f"{split_node(label)}: {per_kind[kind]} {kind} values")
        for kind, limit in rules.limits.items():
            # Time windows are not checked here: they depend on when each was seen.
            if limit.window_days is None and per_kind[kind] > limit.max:
                out.append(f"{split_node(label)}: {per_kind[kind]} {kind} values > {limit.max}")
    return out


def check_graph(
    conn: Connection, *, business_id: str, rules: IdentityRules, engine_url: str
) -> GraphCheck:
    """Compute the components of the live edges on the engine and compare with profiles."""
    owner: dict[str, str] = {}
    for row in conn.execute(
        select(
            profile_identifiers.c.kind,
            profile_identifiers.c.value,
            profile_identifiers.c.profile_id,
        ).where(profile_identifiers.c.business_id == business_id)
    ):
        owner[node_id(row.kind, row.value)] = row.profile_id
    src, dst = [], []
    for edge in conn.execute(
        select(
            identity_edges.c.a_kind,
            identity_edges.c.a_value,
            identity_edges.c.b_kind,
            identity_edges.c.b_value,
        ).where(identity_edges.c.business_id == business_id, identity_edges.c.removed_at.is_(None))
    ):
        src.append(node_id(edge.a_kind, edge.a_value))
        dst.append(node_id(edge.b_kind, edge.b_value))
    backend = connect(engine_url)
    labels = components(
        backend,
        pa.table({"node": pa.array(sorted(owner), pa.string())}),
        pa.table({"src": pa.array(src, pa.string()), "dst": pa.array(dst, pa.string())}),
    )
    by_label: dict[str, list[str]] = defaultdict(list)
    for node, label in labels.items():
        by_label[label].append(node)
    by_profile: dict[str, set[str]] = defaultdict(set)
    for node, pid in owner.items():
        by_profile[pid].add(node)
    profile_sets = {frozenset(v) for v in by_profile.values()}
    mismatched = [
        sorted(nodes) for nodes in by_label.values() if frozenset(nodes) not in profile_sets
    ]
    return GraphCheck(
        identifiers=len(owner),
        edges=len(src),
        profiles=len(by_profile),
        components=len(by_label),
        mismatched=sorted(mismatched),
        violations=guardrail_violations(
            {label: [split_node(n) for n in nodes] for label, nodes in by_label.items()}, rules
        ),
    )
