"""Backward lineage of a slice: the rows matching a predicate -> the runs that wrote them ->
those runs' inputs at the versions they read -> their writers -> ... up to the sources.

Where a run declared how its keys map to an input's keys (``lineage_keys``), the slice is
narrowed row by row at that hop and the rows reached are counted; otherwise the hop is
run-level (everything the run read from that input). Models are hops too: a run that loaded a
model version leads to the run that registered it, and from there to its training data. All of
it comes from what was recorded, so it crosses cadences (hourly inference <- weekly model <-
daily ETL) and still works years later.

Runs are expanded newest first: a run's consumers started after it, so by the time a run is
expanded every key that reaches it has arrived, and each input is read once per new key set.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.layout import RUN_ID_COLUMN
from tracelake.lineage.query.graph import KeyPair
from tracelake.lineage.query.slices import TableAt, key_strings, resolve_as_of
from tracelake.lineage.query.walk_state import WalkState
from tracelake.lineage.query.walker import (
    KeyMatch,
    LineageWalker,
    TraceEdge,
    TraceNode,
    concat_rows,
    group_by_run,
    model_node_id,
)

__all__ = ["LineageWalker", "TraceEdge", "TraceNode", "TraceResult", "trace"]


@dataclass
class TraceResult:
    table: str
    version: int
    predicate: str
    rows: int
    nodes: dict[str, TraceNode]
    edges: list[TraceEdge]
    roots: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "version": self.version, "predicate": self.predicate, "rows": self.rows,
                "roots": self.roots, "nodes": [n.to_dict() for n in self.nodes.values()],
                "edges": [e.__dict__ for e in self.edges]}

    def runs(self, component: str | None = None) -> list[TraceNode]:
        return [n for n in self.nodes.values() if n.kind == "run" and (component is None or n.component == component)]

    def parents(self, node_id: str) -> list[TraceEdge]:
        return [e for e in self.edges if e.child == node_id]


class _BackwardWalk(WalkState):
    """The state of one trace: what has been reached, and how (rows: the run's rows in the slice;
    keys followed: per run and input)."""

    def queue_order(self, run_id: str, node: TraceNode) -> str | None:
        return _newest_first(run_id) if node.kind == "run" else None

    def rows_of(self, run_id: str, lineage_keys: dict[str, list[KeyPair]]) -> pa.Table | None:
        """The run's rows in the slice; a run reached only at run level contributes all of them."""
        rows = concat_rows(self.reached_rows.get(run_id, []))
        if rows is None and run_id not in self.whole_output:
            self.whole_output.add(run_id)
            rows = self.walker.output_rows(run_id, {p.out for pairs in lineage_keys.values() for p in pairs})
            if rows is not None:
                self.reached_rows[run_id] = [rows]
        return rows

    def follow_model(self, run_id: str, inp: dict[str, Any]) -> None:
        model_id = model_node_id(inp["name"], inp["model_version"])
        if (run_id, model_id) in self.hops_followed:
            return
        self.hops_followed.add((run_id, model_id))
        depth = self.nodes[run_id].depth
        if model_id not in self.nodes:
            self.nodes[model_id] = self.walker.model_node(inp["name"], inp["model_version"], depth + 1,
                                                          inp.get("mlflow_run_id"))
        label = f"{inp['name']} v{inp['model_version']}"
        self.edges.append(TraceEdge(run_id, model_id, "model", label))
        registrar = self.walker.index.model_registrar(inp["name"], inp["model_version"])
        if registrar and (model_id, registrar) not in self.hops_followed:
            self.hops_followed.add((model_id, registrar))
            self.edges.append(TraceEdge(model_id, registrar, "registered", label))
            self.reach(registrar, depth + 2, None)

    def follow_keys(self, run_id: str, inp: dict[str, Any], pairs: list[KeyPair], rows: pa.Table) -> None:
        """Only the input rows whose keys match the run's rows in the slice."""
        sent = self.keys_followed.setdefault((run_id, inp["name"]), set())
        values = pc.unique(key_strings(rows, [p.out for p in pairs]))
        new = pc.filter(values, pc.invert(pc.is_in(values, value_set=pa.array(list(sent), pa.string()))))
        if len(new) == 0:
            return
        sent.update(new.to_pylist())
        input_keys = [p.inp for p in pairs]
        found = self.walker.rows(inp["path"], int(inp["version"]), self.walker.index.key_columns_of(inp["name"]),
                                        partitions=inp.get("partitions"), key_columns=input_keys, key_values=new)
        for parent in pc.unique(found.column(RUN_ID_COLUMN)).to_pylist():
            self.matches.setdefault(parent, []).append(KeyMatch(tuple(input_keys), new))
        self._connect(run_id, inp, found, "rows")

    def follow_whole(self, run_id: str, inp: dict[str, Any]) -> None:
        """Everything the run read from that input (no keys declared for it)."""
        if (run_id, inp["name"]) in self.hops_followed:
            return
        self.hops_followed.add((run_id, inp["name"]))
        found = self.walker.rows(inp["path"], int(inp["version"]), self.walker.index.key_columns_of(inp["name"]),
                                        partitions=inp.get("partitions"))
        self.whole_output.update(pc.unique(found.column(RUN_ID_COLUMN)).to_pylist())
        self._connect(run_id, inp, found, "run")

    def _connect(self, run_id: str, inp: dict[str, Any], found: pa.Table, via: str) -> None:
        label = f"{inp['name']}@v{int(inp['version'])}"
        for parent, part in group_by_run(found):
            self.reach(parent, self.nodes[run_id].depth + 1, part)
            self.edges.append(TraceEdge(run_id, parent, via, label, rows=part.num_rows, partitions=inp.get("partitions")))

    def note_unfollowed(self, run_id: str, inp: dict[str, Any], rec: dict[str, Any]) -> None:
        """An input of an external run with no Delta version to follow (unverified - the producer
        named a version the log does not have - or not a Delta table): shown, not traced through."""
        version = inp.get("version")
        label = f"{inp['name']}@v{version}" if version is not None else str(inp["name"])
        why = dict(rec.get("tags") or []).get(f"tracelake.external.input.{inp['name']}") or f"kind {inp.get('kind')}"
        node_id = f"unfollowed:{label}"
        if node_id not in self.nodes:
            self.nodes[node_id] = TraceNode(node_id, "unrecorded", f"{label}: not followed ({why})",
                                            depth=self.nodes[run_id].depth + 1)
        self.edges.append(TraceEdge(run_id, node_id, "run", label))

    def expand(self, run_id: str) -> None:
        rec = self.walker.index.record(run_id)
        keys = rec["lineage_keys"]
        rows = self.rows_of(run_id, keys)
        for inp in rec["inputs"]:
            if inp.get("kind") == "model":
                self.follow_model(run_id, inp)
            elif inp.get("kind") != "table" or inp.get("version") is None:
                self.note_unfollowed(run_id, inp, rec)
            elif keys.get(inp["name"]) and rows is not None:
                self.follow_keys(run_id, inp, keys[inp["name"]], rows)
            else:
                self.follow_whole(run_id, inp)


def trace(lake: Lakehouse, table: str, where: str = "true", *, as_of: str | int | None = None,
          walker: LineageWalker | None = None, max_runs: int = 100_000) -> TraceResult:
    """Backward lineage of the rows of ``table`` matching ``where`` (at ``as_of``, default latest)."""
    walker = walker or LineageWalker(lake)
    at: TableAt = walker.reader.table_at(table, resolve_as_of(as_of))
    rows = walker.reader.select(at, where, walker.index.key_columns_of(table))
    walk = _BackwardWalk(walker)
    roots, root_rows = [], {}
    for run_id, part in group_by_run(rows):
        walk.reach(run_id, 0, part)
        roots.append(run_id)
        root_rows[run_id] = part.num_rows
    while walk.queue and len(walk.nodes) < max_runs:
        _, run_id = heapq.heappop(walk.queue)
        walk.expand(run_id)
    for run_id, node in walk.nodes.items():
        if node.kind != "run":
            continue
        if run_id in walk.whole_output:
            node.rows = walker.count_rows(run_id, None)
        elif run_id in walk.matches:
            node.rows = walker.count_rows(run_id, walk.matches[run_id])
        else:
            node.rows = root_rows.get(run_id)
    return TraceResult(table=table, version=at.version, predicate=where, rows=rows.num_rows, nodes=walk.nodes,
                       edges=merge_edges(walk.edges), roots=roots)


def _newest_first(run_id: str) -> str:
    # Run ids sort by start time; invert the characters so the heap pops the newest first.
    return "".join(chr(255 - ord(c)) for c in run_id)


def merge_edges(edges: list[TraceEdge]) -> list[TraceEdge]:
    """One edge per (child, parent, input), with the rows of repeated hops added up."""
    merged: dict[tuple[str, str, str], TraceEdge] = {}
    for e in edges:
        key = (e.child, e.parent, e.input)
        if key in merged:
            if e.rows is not None:
                merged[key].rows = (merged[key].rows or 0) + e.rows
        else:
            merged[key] = e
    return list(merged.values())
