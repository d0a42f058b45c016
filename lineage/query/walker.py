"""The lineage graph a trace or an impact returns, and the walker both of them use.

A lineage answer is a small graph: **nodes** are component runs (and model versions, and
writers with no record), **edges** say how a child reached a parent - through key-matched rows,
through a whole run's output, through a model it loaded, or through the run that registered a
model. The walker holds what both directions need: the audit index (who wrote and read which
table version), the slice reader (rows of a table version), and the failed checks per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.layout import RUN_ID_COLUMN
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.query.recorded import RecordedFiles
from tracelake.lineage.query.slices import SliceReader, key_strings
from tracelake.lineage.record.audit_tables import CHECK_RESULTS

__all__ = ["KeyMatch", "LineageWalker", "TraceEdge", "TraceNode", "concat_rows", "group_by_run", "model_node_id"]


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
    rows: int | None = None         # rows of this run's output in the answer (None: run-level)
    started_at: str | None = None
    depth: int = 0
    checks: list[dict[str, Any]] = field(default_factory=list)   # failed or warned declared tests
    mlflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TraceEdge:
    child: str
    parent: str
    via: str                        # "rows" | "run" | "model" | "registered"
    input: str                      # "table@vN" or "model name vN"
    rows: int | None = None
    partitions: list[str] | None = None


@dataclass(frozen=True)
class KeyMatch:
    """Rows of a run's output matched on these key columns by these key values."""

    columns: tuple[str, ...]
    values: pa.Array


def model_node_id(name: str, version: Any) -> str:
    return f"model:{name}:{version}"


def group_by_run(rows: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """(writer run id, its rows) for every run that wrote some of ``rows``."""
    if rows.num_rows == 0:
        return
    ids = rows.column(RUN_ID_COLUMN)
    runs = pc.unique(ids)
    if len(runs) == 1 and runs[0].is_valid:
        yield runs[0].as_py(), rows
        return
    # One stable sort, then a slice per run: filtering once per run is quadratic in the runs a
    # hop reaches (a model version's predictions: hundreds of runs, hundreds of thousands of rows).
    order = pc.sort_indices(ids)
    grouped = rows.take(order)
    runs_sorted = pc.run_end_encode(grouped.column(RUN_ID_COLUMN).combine_chunks())
    slices: dict[str | None, pa.Table] = {}
    start = 0
    for run_id, end in zip(runs_sorted.values.to_pylist(), runs_sorted.run_ends.to_pylist(), strict=True):
        # a null id matches no row, as pc.equal would have it
        slices[run_id] = grouped.slice(start, end - start) if run_id is not None else rows.slice(0, 0)
        start = end
    for run_id in runs.to_pylist():
        yield run_id, slices[run_id]


def concat_rows(parts: list[pa.Table]) -> pa.Table | None:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")


class LineageWalker:
    """What trace (backward) and impact (forward) share; keep one warm to answer many questions."""

    def __init__(self, lake: Lakehouse, index: AuditIndex | None = None, reader: SliceReader | None = None,
                 *, recorded_files: bool = True):
        """``recorded_files=False`` reads every hop from the table's snapshot (the slow path the
        fast one is tested against)."""
        self.lake = lake
        self.index = index or AuditIndex(lake)
        self.reader = reader or SliceReader(lake.layout, writers=self.index.writer_at)
        self.recorded = RecordedFiles(self.index, lake.layout) if recorded_files else None
        self._failed_checks: dict[str, list[dict[str, Any]]] | None = None

    def rows(self, path: str, version: int, columns: Iterable[str], **filters: Any) -> pa.Table:
        """Rows of a table version (filtered as ``SliceReader.rows``): from the files the records
        name when they can vouch for them (``recorded``), else from the version's snapshot."""
        if self.recorded is not None:
            found = self.recorded.rows(path, version, columns, **filters)
            if found is not None:
                return found
        return self.reader.rows(path, version, columns, **filters)

    def node_for_run(self, run_id: str, depth: int) -> TraceNode:
        if not self.index.has(run_id):
            return TraceNode(run_id, "unrecorded", f"unrecorded writer {run_id}", depth=depth)
        r = self.index.meta(run_id)  # a tuple lookup: a trace makes hundreds of nodes
        version = r.output_version
        return TraceNode(
            id=run_id, kind="run", label=f"{r.component} {r.partition_key or ''}".strip(),
            component=r.component, partition_key=r.partition_key, status=r.status,
            table=r.output_table, version=None if version is None or version != version else int(version),
            started_at=str(r.started_at), depth=depth, checks=self.failed_checks(run_id),
        )

    def model_node(self, name: str, version: Any, depth: int, mlflow_run_id: str | None) -> TraceNode:
        return TraceNode(model_node_id(name, version), "model", f"model {name} v{version}", depth=depth,
                         mlflow_run_id=mlflow_run_id)

    def failed_checks(self, run_id: str) -> list[dict[str, Any]]:
        """Declared tests of ``run_id`` that failed or warned (read once per walker)."""
        if self._failed_checks is None:
            frame = self.lake.store.read(CHECK_RESULTS)
            bad = frame[~frame["passed"].astype(bool)] if not frame.empty else frame
            by_run: dict[str, list[dict[str, Any]]] = {}
            for r in bad.to_dict("records"):
                by_run.setdefault(r["run_id"], []).append({"check": r["check_name"], "severity": r["severity"],
                                                           "observed": r["observed_value"],
                                                           "threshold": r["threshold_text"]})
            self._failed_checks = by_run
        return list(self._failed_checks.get(run_id, []))

    def output_rows(self, run_id: str, columns: set[str]) -> pa.Table | None:
        """Every row ``run_id`` wrote (only ``columns``); None when it committed nothing."""
        version = self.index.output_version(run_id)
        if version is None:
            return None
        return self.rows(self.index.meta(run_id).output_path, version, columns,
                         partitions=self.index.output_partitions(run_id) or None, run_ids=[run_id])

    def count_rows(self, run_id: str, matches: list[KeyMatch] | None) -> int | None:
        """Rows of the run's output in the answer: all of them (``matches is None``), or those whose
        keys matched on at least one hop."""
        version = self.index.output_version(run_id) if self.index.has(run_id) else None
        if version is None:
            return None
        if matches is None:
            rows = self.index.meta(run_id).output_rows
            return None if rows is None or rows != rows else int(rows)   # a plain int, for JSON
        columns = sorted({c for m in matches for c in m.columns})
        data = self.rows(self.index.meta(run_id).output_path, version, columns,
                         partitions=self.index.output_partitions(run_id) or None, run_ids=[run_id])
        mask = None
        for m in matches:
            hit = pc.is_in(key_strings(data, list(m.columns)), value_set=m.values)
            mask = hit if mask is None else pc.or_(mask, hit)
        return int(pc.sum(mask).as_py() or 0) if mask is not None else data.num_rows
