"""Backward lineage of a slice: the rows matching a predicate -> the runs that wrote them ->
those runs' inputs at the versions they read -> their writers -> ... up to the sources.

Where a run declared how its keys map to an input's keys (``lineage_keys``), the slice is
narrowed row by row at that hop and the rows reached are counted; otherwise the hop is
run-level (everything the run read from that input). Models are hops too: a run that loaded a
model version leads to the run that registered it, and from there to its training data. All of
it comes from what was recorded, so it crosses cadences (hourly inference <- weekly model <-
daily ETL) and still works years later.
"""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tracelake.lineage.record.audit_tables import CHECK_RESULTS
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.layout import RUN_ID_COLUMN
from tracelake.lineage.query.slices import SliceReader, TableAt, key_strings, resolve_as_of

__all__ = ["trace", "TraceResult", "TraceNode", "TraceEdge", "LineageWalker"]


@dataclass
class TraceNode:
    id: str
    kind: str                       # "run" | "model" | "unrecorded"
    label: str
    component: str | None = None
    partition_key: str | None = None
    status: str | None = None
    table: str | None = None
    version: int | None = None
    rows: int | None = None         # rows of this run's output in the slice (None: run-level)
    started_at: str | None = None
    depth: int = 0
    checks: list[dict[str, Any]] = field(default_factory=list)   # failed or warned declared tests
    mlflow_run_id: str | None = None


@dataclass
class TraceEdge:
    child: str
    parent: str
    via: str                        # "rows" | "run" | "model" | "registered"
    input: str                      # "table@vN" or "model name vN"
    rows: int | None = None
    partitions: list[str] | None = None


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
                "roots": self.roots, "nodes": [asdict(n) for n in self.nodes.values()],
                "edges": [asdict(e) for e in self.edges]}

    def runs(self, component: str | None = None) -> list[TraceNode]:
        return [n for n in self.nodes.values() if n.kind == "run" and (component is None or n.component == component)]

    def parents(self, node_id: str) -> list[TraceEdge]:
        return [e for e in self.edges if e.child == node_id]


class LineageWalker:
    """Shared machinery of trace (backward) and impact (forward)."""

    def __init__(self, lake: Lakehouse, index: AuditIndex | None = None, reader: SliceReader | None = None):
        self.lake = lake
        self.index = index or AuditIndex(lake)
        self.reader = reader or SliceReader(lake.layout)
        self._checks = None

    def node_for_run(self, run_id: str, depth: int) -> TraceNode:
        if not self.index.has(run_id):
            return TraceNode(run_id, "unrecorded", f"unrecorded writer {run_id}", depth=depth)
        r = self.index.runs.loc[run_id]
        version = r["output_version"]
        return TraceNode(
            id=run_id, kind="run", label=f"{r['component']} {r['partition_key'] or ''}".strip(),
            component=r["component"], partition_key=r["partition_key"], status=r["status"],
            table=r["output_table"], version=None if version is None else int(version),
            started_at=str(r["started_at"]), depth=depth, checks=self.failed_checks(run_id),
        )

    def failed_checks(self, run_id: str) -> list[dict[str, Any]]:
        if self._checks is None:
            frame = self.lake.store.read(CHECK_RESULTS)
            self._checks = frame[~frame["passed"].astype(bool)] if not frame.empty else frame
        if self._checks.empty:
            return []
        hit = self._checks[self._checks["run_id"] == run_id]
        return [{"check": r["check_name"], "severity": r["severity"], "observed": r["observed_value"],
                 "threshold": r["threshold_text"]} for r in hit.to_dict("records")]

    def count_rows(self, run_id: str, matches: list[tuple[list[str], pa.Array]] | None) -> int | None:
        """Rows of the run's output in the slice: all of them (``matches is None``), or those whose
        keys matched on at least one hop."""
        rec = self.index.record(run_id) if self.index.has(run_id) else None
        if rec is None or rec.get("output_version") is None:
            return None
        if matches is None:
            return rec.get("output_rows")
        cols = sorted({c for cols, _ in matches for c in cols})
        data = self.reader.rows(rec["output_path"], int(rec["output_version"]), cols,
                                partitions=rec["output_partitions"] or None, run_ids=[run_id])
        mask = None
        for key_cols, values in matches:
            hit = pc.is_in(key_strings(data, key_cols), value_set=values)
            mask = hit if mask is None else pc.or_(mask, hit)
        return int(pc.sum(mask).as_py() or 0) if mask is not None else data.num_rows

    def output_rows(self, run_id: str, columns: set[str]) -> pa.Table | None:
        """Every row ``run_id`` wrote (only ``columns``), for a run entered at run level."""
        rec = self.index.record(run_id)
        if rec.get("output_version") is None:
            return None
        return self.reader.rows(rec["output_path"], int(rec["output_version"]), columns,
                                partitions=rec["output_partitions"] or None, run_ids=[run_id])


def trace(lake: Lakehouse, table: str, where: str = "true", *, as_of: str | int | None = None,
          walker: LineageWalker | None = None, max_runs: int = 100_000) -> TraceResult:
    """Backward lineage of the rows of ``table`` matching ``where`` (at ``as_of``, default latest)."""
    walker = walker or LineageWalker(lake)
    index, reader = walker.index, walker.reader
    at: TableAt = reader.table_at(table, resolve_as_of(as_of))
    rows = reader.select(at, where, index.key_columns_of(table))
    nodes: dict[str, TraceNode] = {}
    edges: list[TraceEdge] = []
    slices: dict[str, list[pa.Table]] = {}
    expanded: dict[tuple[str, str], set[str] | bool] = {}
    heap: list[tuple[str, str]] = []   # (-ordering key, run id): newest runs expand first
    matches: dict[str, list[tuple[list[str], pa.Array]]] = {}
    whole: set[str] = set()            # runs whose whole output is in the slice (run-level hops)
    root_rows: dict[str, int] = {}

    def discover(run_id: str, depth: int, part: pa.Table | None) -> None:
        node = nodes.get(run_id)
        if node is None:
            node = walker.node_for_run(run_id, depth)
            nodes[run_id] = node
        node.depth = min(node.depth, depth)
        if part is not None:
            slices.setdefault(run_id, []).append(part)
        if node.kind == "run":
            heapq.heappush(heap, (_neg(run_id), run_id))

    roots = []
    for run_id, part in _group_by_run(rows):
        discover(run_id, 0, part)
        roots.append(run_id)
        root_rows[run_id] = part.num_rows

    while heap and len(nodes) < max_runs:
        _, run_id = heapq.heappop(heap)
        node = nodes[run_id]
        rec = index.record(run_id)
        keys = rec["lineage_keys"]
        my_rows = _concat(slices.get(run_id))
        if my_rows is None and (run_id, "*rows") not in expanded:
            # Entered at run level (or via a model): its whole output is in the slice.
            need = {p.out for pairs in keys.values() for p in pairs}
            my_rows = walker.output_rows(run_id, need)
            expanded[(run_id, "*rows")] = True
            whole.add(run_id)
            if my_rows is not None:
                slices[run_id] = [my_rows]
        for inp in rec["inputs"]:
            if inp.get("kind") == "model":
                model_id = f"model:{inp['name']}:{inp['model_version']}"
                if (run_id, model_id) in expanded:
                    continue
                expanded[(run_id, model_id)] = True
                if model_id not in nodes:
                    nodes[model_id] = TraceNode(model_id, "model", f"model {inp['name']} v{inp['model_version']}",
                                                depth=node.depth + 1, mlflow_run_id=inp.get("mlflow_run_id"))
                edges.append(TraceEdge(run_id, model_id, "model", f"{inp['name']} v{inp['model_version']}"))
                registrar = index.model_registrar(inp["name"], inp["model_version"])
                if registrar and (model_id, registrar) not in expanded:
                    expanded[(model_id, registrar)] = True
                    edges.append(TraceEdge(model_id, registrar, "registered", f"{inp['name']} v{inp['model_version']}"))
                    discover(registrar, node.depth + 2, None)
                continue
            name, version, parts = inp["name"], int(inp["version"]), inp.get("partitions")
            label = f"{name}@v{version}"
            pairs = keys.get(name)
            next_cols = index.key_columns_of(name)
            if pairs and my_rows is not None:
                done = expanded.setdefault((run_id, name), set())
                values = pc.unique(key_strings(my_rows, [p.out for p in pairs]))
                new = pc.filter(values, pc.invert(pc.is_in(values, value_set=pa.array(list(done), pa.string()))))
                if len(new) == 0:
                    continue
                done.update(new.to_pylist())
                found = reader.rows(inp["path"], version, next_cols, partitions=parts,
                                    key_columns=[p.inp for p in pairs], key_values=new)
                via = "rows"
                for parent in pc.unique(found.column(RUN_ID_COLUMN)).to_pylist():
                    matches.setdefault(parent, []).append(([p.inp for p in pairs], new))
            else:
                if (run_id, name) in expanded:
                    continue
                expanded[(run_id, name)] = True
                found = reader.rows(inp["path"], version, next_cols, partitions=parts)
                via = "run"
                whole.update(pc.unique(found.column(RUN_ID_COLUMN)).to_pylist())
            for parent, part in _group_by_run(found):
                discover(parent, node.depth + 1, part)
                edges.append(TraceEdge(run_id, parent, via, label, rows=part.num_rows, partitions=parts))
    for run_id, node in nodes.items():
        if node.kind != "run":
            continue
        if run_id in whole:
            node.rows = walker.count_rows(run_id, None)
        elif run_id in matches:
            node.rows = walker.count_rows(run_id, matches[run_id])
        else:
            node.rows = root_rows.get(run_id)
    return TraceResult(table=table, version=at.version, predicate=where, rows=rows.num_rows, nodes=nodes,
                       edges=_merge_edges(edges), roots=roots)


def _neg(run_id: str) -> str:
    # Run ids sort by start time; invert the characters so the heap pops the newest first.
    return "".join(chr(255 - ord(c)) for c in run_id)


def _group_by_run(rows: pa.Table):
    if rows.num_rows == 0:
        return []
    ids = rows.column(RUN_ID_COLUMN)
    out = []
    for run_id in pc.unique(ids).to_pylist():
        out.append((run_id, rows.filter(pc.equal(ids, run_id))))
    return out


def _concat(parts: list[pa.Table] | None) -> pa.Table | None:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")


def _merge_edges(edges: list[TraceEdge]) -> list[TraceEdge]:
    merged: dict[tuple[str, str, str], TraceEdge] = {}
    for e in edges:
        key = (e.child, e.parent, e.input)
        if key in merged:
            if e.rows is not None:
                merged[key].rows = (merged[key].rows or 0) + e.rows
        else:
            merged[key] = e
    return list(merged.values())
