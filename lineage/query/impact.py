"""Forward impact of a run (or of the run that wrote a table version): every downstream run that
consumed its rows, transitively, and how many rows each wrote that descend from it.

A downstream run is affected only if it read the table at a version where the run's rows were
still live (not yet replaced by a re-run of the partition), and - where it declared lineage
keys - only for the rows whose keys match. Models carry impact too: a model trained on affected
data affects every run that loaded that model version.
"""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.query.slices import SliceError, key_strings
from tracelake.lineage.query.trace import LineageWalker, TraceEdge, TraceNode, _concat, _group_by_run

__all__ = ["impact", "ImpactResult", "parse_target"]


@dataclass
class ImpactResult:
    start: str
    nodes: dict[str, TraceNode]
    edges: list[TraceEdge]

    def affected_runs(self, component: str | None = None) -> list[TraceNode]:
        return [n for n in self.nodes.values()
                if n.kind == "run" and n.id != self.start and (component is None or n.component == component)]

    def summary(self) -> list[dict[str, Any]]:
        by: dict[str, dict[str, Any]] = {}
        for n in self.affected_runs():
            s = by.setdefault(n.component, {"component": n.component, "runs": 0, "rows": 0, "first": None, "last": None})
            s["runs"] += 1
            s["rows"] += n.rows or 0
            if n.partition_key:
                s["first"] = min(filter(None, [s["first"], n.partition_key]))
                s["last"] = max(filter(None, [s["last"], n.partition_key]))
        return sorted(by.values(), key=lambda s: min(self.nodes[n.id].depth for n in self.affected_runs(s["component"])))

    def models(self) -> list[str]:
        return sorted(n.label for n in self.nodes.values() if n.kind == "model")

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "summary": self.summary(), "models": self.models(),
                "nodes": [asdict(n) for n in self.nodes.values()], "edges": [asdict(e) for e in self.edges]}


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


def impact(lake: Lakehouse, target: str, *, walker: LineageWalker | None = None) -> ImpactResult:
    walker = walker or LineageWalker(lake)
    index, reader = walker.index, walker.reader
    start = parse_target(walker, target)
    nodes: dict[str, TraceNode] = {}
    edges: list[TraceEdge] = []
    rows_of: dict[str, list[pa.Table]] = {}
    expanded: dict[tuple[str, str], set[str] | bool] = {}
    heap: list[tuple[str, str]] = []
    matches: dict[str, list[tuple[list[str], pa.Array]]] = {}
    whole: set[str] = {start}

    def reach(run_id: str, depth: int, rows: pa.Table | None) -> TraceNode:
        node = nodes.get(run_id)
        if node is None:
            node = walker.node_for_run(run_id, depth)
            nodes[run_id] = node
        node.depth = min(node.depth, depth)
        if rows is not None:
            rows_of.setdefault(run_id, []).append(rows)
        heapq.heappush(heap, (run_id, run_id))  # oldest first: parents expand before children
        return node

    first = walker.output_rows(start, index.key_columns_of(index.record(start).get("output_table") or ""))
    reach(start, 0, first)
    while heap:
        _, run_id = heapq.heappop(heap)
        node = nodes[run_id]
        rec = index.record(run_id)
        mine = _concat(rows_of.get(run_id))
        meta = index.meta(run_id) if index.has(run_id) else None
        if mine is None and run_id in whole and meta is not None and meta.output_version is not None:
            # Entered at run level: read its rows only if someone downstream read them.
            if index.reader_entries(meta.output_table, int(meta.output_version), index.output_partitions(run_id) or None):
                mine = walker.output_rows(run_id, index.key_columns_of(meta.output_table))
        table, version = rec.get("output_table"), rec.get("output_version")
        out_parts = index.output_partitions(run_id) or None
        if table is not None and version is not None and mine is not None and mine.num_rows:
            keyed: dict[tuple, list[tuple[str, str]]] = {}
            for child, read_version in index.reader_entries(table, int(version), out_parts):
                if child == run_id or not index.rows_live_at(run_id, read_version):
                    continue
                child_meta = index.meta(child)
                pairs = index.lineage_keys(child).get(table)
                label = f"{table}@v{read_version}"
                if pairs and child_meta.output_version is not None:
                    group = (child_meta.output_path, int(child_meta.output_version), tuple(pairs))
                    keyed.setdefault(group, []).append((child, label))
                elif (run_id, child) not in expanded:
                    expanded[(run_id, child)] = True
                    whole.add(child)
                    reach(child, node.depth + 1, None)
                    edges.append(TraceEdge(child, run_id, "run", label))
            # Keyed children that write the same table version are checked in one read.
            for (path, out_version, pairs), children in keyed.items():
                values = pc.unique(key_strings(mine, [p.inp for p in pairs]))
                ids = [c for c, _ in children]
                parts = sorted({p for c in ids for p in index.output_partitions(c)}) or None
                found = reader.rows(path, out_version, index.key_columns_of(index.meta(ids[0]).output_table),
                                    partitions=parts, run_ids=ids, key_columns=[p.out for p in pairs], key_values=values)
                labels = dict(children)
                for child, part in _group_by_run(found):
                    done = expanded.setdefault((run_id, child), set())
                    new_keys = set(key_strings(part, [p.out for p in pairs]).to_pylist()) - done
                    if not new_keys:
                        continue
                    done.update(new_keys)
                    matches.setdefault(child, []).append(([p.out for p in pairs], pa.array(sorted(new_keys), pa.string())))
                    reach(child, node.depth + 1, part)
                    edges.append(TraceEdge(child, run_id, "rows", labels[child], rows=part.num_rows))
        for model in rec["models"]:
            if model["role"] != "registered":
                continue
            model_id = f"model:{model['name']}:{model['version']}"
            if model_id not in nodes:
                nodes[model_id] = TraceNode(model_id, "model", f"model {model['name']} v{model['version']}",
                                            depth=node.depth + 1, mlflow_run_id=model.get("mlflow_run_id"))
                edges.append(TraceEdge(model_id, run_id, "registered", f"{model['name']} v{model['version']}"))
            for child in index.model_consumers(model["name"], model["version"]):
                if (model_id, child) in expanded:
                    continue
                expanded[(model_id, child)] = True
                whole.add(child)
                reach(child, node.depth + 2, None)
                edges.append(TraceEdge(child, model_id, "model", f"{model['name']} v{model['version']}"))
    for run_id, node in nodes.items():
        if node.kind == "run":
            node.rows = walker.count_rows(run_id, None if run_id in whole else matches.get(run_id))
    return ImpactResult(start=start, nodes=nodes, edges=edges)
