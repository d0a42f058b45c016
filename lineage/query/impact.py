"""Forward impact of a run (or of the run that wrote a table version): every downstream run that
consumed its rows, transitively, and how many rows each wrote that descend from it.

A downstream run is affected only if it read the table at a version where the run's rows were
still live (not yet replaced by a re-run of the partition), and - where it declared lineage
keys - only for the rows whose keys match. Models carry impact too: a model trained on affected
data affects every run that loaded that model version.

Runs are expanded oldest first, so a run's rows are complete before its consumers are checked.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.query.graph import KeyPair
from tracelake.lineage.query.slices import SliceError, key_strings
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

__all__ = ["ImpactResult", "impact", "parse_target"]


@dataclass
class ImpactResult:
    start: str
    nodes: dict[str, TraceNode]
    edges: list[TraceEdge]

    def affected_runs(self, component: str | None = None) -> list[TraceNode]:
        return [n for n in self.nodes.values()
                if n.kind == "run" and n.id != self.start and (component is None or n.component == component)]

    def summary(self) -> list[dict[str, Any]]:
        """Affected runs per component: how many, how many rows, which partitions."""
        by: dict[str, dict[str, Any]] = {}
        depth: dict[str, int] = {}
        for n in self.affected_runs():
            s = by.setdefault(n.component or "?", {"component": n.component, "runs": 0, "rows": 0, "first": None,
                                                   "last": None})
            s["runs"] += 1
            s["rows"] += n.rows or 0
            depth[n.component or "?"] = min(depth.get(n.component or "?", n.depth), n.depth)
            if n.partition_key:
                s["first"] = min(filter(None, [s["first"], n.partition_key]))
                s["last"] = max(filter(None, [s["last"], n.partition_key]))
        return sorted(by.values(), key=lambda s: depth[s["component"] or "?"])

    def models(self) -> list[str]:
        return sorted(n.label for n in self.nodes.values() if n.kind == "model")

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "summary": self.summary(), "models": self.models(),
                "nodes": [n.to_dict() for n in self.nodes.values()], "edges": [e.__dict__ for e in self.edges]}


def parse_target(walker: LineageWalker, target: str) -> str:
    """A run id, or ``table@version`` -> the run that committed that version."""
    if "@" in target:
        table, _, version = target.partition("@")
        version = version.lstrip("v")
        if not version.isdigit():
            raise SliceError(f"{target!r}: write a table version as TABLE@VERSION, e.g. cleaned_trips@14")
        run_id = walker.index.writer_of_version(table, int(version))
        if run_id is None:
            raise SliceError(f"no recorded run wrote {table}@v{version}")
        return run_id
    walker.index.record(target)  # raises RunNotFound with a clear message
    return target


class _ForwardWalk(WalkState):
    """The state of one impact: what has been reached, and how (keys followed: per parent and child)."""

    def queue_order(self, run_id: str, node: TraceNode) -> str | None:
        return run_id   # oldest first: parents before children

    def rows_of(self, run_id: str) -> pa.Table | None:
        """The run's affected rows; a run reached at run level is read only if someone read it."""
        rows = concat_rows(self.reached_rows.get(run_id, []))
        index = self.walker.index
        if rows is None and run_id in self.whole_output and index.has(run_id):
            meta = index.meta(run_id)
            if meta.output_version is not None and index.reader_entries(
                    meta.output_table, int(meta.output_version), index.output_partitions(run_id) or None):
                rows = self.walker.output_rows(run_id, index.key_columns_of(meta.output_table))
        return rows

    def follow_readers(self, run_id: str, rows: pa.Table) -> None:
        """Runs that read the rows while they were live: keyed ones row by row, others whole."""
        index = self.walker.index
        meta = index.meta(run_id)
        keyed: dict[tuple[str, int, tuple[KeyPair, ...]], list[tuple[str, str]]] = {}
        for child, read_version in index.reader_entries(meta.output_table, int(meta.output_version),
                                                        index.output_partitions(run_id) or None):
            if child == run_id or not index.rows_live_at(run_id, read_version):
                continue
            child_meta = index.meta(child)
            pairs = index.lineage_keys(child).get(meta.output_table)
            label = f"{meta.output_table}@v{read_version}"
            if pairs and child_meta.output_version is not None:
                group = (child_meta.output_path, int(child_meta.output_version), tuple(pairs))
                keyed.setdefault(group, []).append((child, label))
            elif (run_id, child) not in self.hops_followed:
                self.hops_followed.add((run_id, child))
                self.whole_output.add(child)
                self.reach(child, self.nodes[run_id].depth + 1, None)
                self.edges.append(TraceEdge(child, run_id, "run", label))
        for (path, version, pairs), children in keyed.items():
            self._follow_keyed(run_id, rows, path, version, list(pairs), dict(children))

    def _follow_keyed(self, run_id: str, rows: pa.Table, path: str, version: int, pairs: list[KeyPair],
                      labels: dict[str, str]) -> None:
        """Children writing the same table version are checked in one read."""
        index = self.walker.index
        values = pc.unique(key_strings(rows, [p.inp for p in pairs]))
        ids = list(labels)
        parts = sorted({p for c in ids for p in index.output_partitions(c)}) or None
        out_keys = [p.out for p in pairs]
        found = self.walker.rows(path, version, index.key_columns_of(index.meta(ids[0]).output_table),
                                        partitions=parts, run_ids=ids, key_columns=out_keys, key_values=values)
        for child, part in group_by_run(found):
            sent = self.keys_followed.setdefault((run_id, child), set())
            new_keys = set(key_strings(part, out_keys).to_pylist()) - sent
            if not new_keys:
                continue
            sent.update(new_keys)
            self.matches.setdefault(child, []).append(KeyMatch(tuple(out_keys), pa.array(sorted(new_keys), pa.string())))
            self.reach(child, self.nodes[run_id].depth + 1, part)
            self.edges.append(TraceEdge(child, run_id, "rows", labels[child], rows=part.num_rows))

    def follow_models(self, run_id: str) -> None:
        """A model trained on affected data affects every run that loaded that version."""
        for model in self.walker.index.registered_models(run_id):
            model_id = model_node_id(model["name"], model["version"])
            label = f"{model['name']} v{model['version']}"
            if model_id not in self.nodes:
                self.nodes[model_id] = self.walker.model_node(model["name"], model["version"],
                                                              self.nodes[run_id].depth + 1, model.get("mlflow_run_id"))
                self.edges.append(TraceEdge(model_id, run_id, "registered", label))
            for child in self.walker.index.model_consumers(model["name"], model["version"]):
                if (model_id, child) in self.hops_followed:
                    continue
                self.hops_followed.add((model_id, child))
                self.whole_output.add(child)
                self.reach(child, self.nodes[run_id].depth + 2, None)
                self.edges.append(TraceEdge(child, model_id, "model", label))

    def expand(self, run_id: str) -> None:
        index = self.walker.index
        rows = self.rows_of(run_id)
        if index.meta(run_id).output_table is not None and index.output_version(run_id) is not None \
                and rows is not None and rows.num_rows:
            self.follow_readers(run_id, rows)
        self.follow_models(run_id)


def impact(lake: Lakehouse, target: str, *, walker: LineageWalker | None = None) -> ImpactResult:
    walker = walker or LineageWalker(lake)
    index = walker.index
    start = parse_target(walker, target)
    walk = _ForwardWalk(walker, whole_output={start})
    walk.reach(start, 0, walker.output_rows(start, index.key_columns_of(index.record(start).get("output_table") or "")))
    while walk.queue:
        _, run_id = heapq.heappop(walk.queue)
        walk.expand(run_id)
    for run_id, node in walk.nodes.items():
        if node.kind == "run":
            node.rows = walker.count_rows(run_id, None if run_id in walk.whole_output else walk.matches.get(run_id))
    return ImpactResult(start=start, nodes=walk.nodes, edges=walk.edges)
