"""The records a compliance report is built from: read once per report, without Spark.

Everything comes from the audit store (Delta rows plus the journal's unflushed tail, through
delta-rs and pandas) and from Delta tables read at recorded versions. ``Records`` loads each
audit table lazily - a decision report over three years of history never reads the metrics -
and remembers which component runs a report cites, so the issued record can name them with
their record hashes. ``chain_heads`` says how far each audit chain reached when the report was
built: a later reader can tell which records existed when the report was issued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.record.audit_tables import CHECK_RESULTS, METRICS, RETENTION_CHECKS
from tracelake.monitors.audit_tables import ALERTS, ANOMALIES, SLA_EVALUATIONS

__all__ = ["DRIFT_MARKER_COLUMNS", "Records", "ReportInputError", "data_day", "plain"]

# A data table holds drift verdicts when it has these columns (what monitors.drift writes).
DRIFT_MARKER_COLUMNS = {"table_name", "column_name", "slice_key", "window_start", "reference_kind", "model",
                        "drifted", "report_html"}


class ReportInputError(ValueError):
    """A report cannot be built from these arguments (said in one line, before any real work)."""


def data_day(partition_key: Any, started_at: Any) -> date | None:
    """The day a run's data belongs to: its partition's date, else the day it started.

    Reports count runs by the time of the data they processed, not the wall clock of the run, so
    a backfill of last March lands in last March's report."""
    text = None if partition_key is None or partition_key != partition_key else str(partition_key)
    if text:
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            pass
    if started_at is None or started_at is pd.NaT:
        return None
    try:
        return pd.Timestamp(started_at).date()
    except (TypeError, ValueError):
        return None


def plain(value: Any) -> Any:
    """pandas/numpy/arrow values -> JSON-friendly Python (times as ISO strings, NaN as None)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if value != value else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NaT or value is pd.NA:
        return None
    return value


@dataclass
class Records:
    """A read-once view of one lakehouse's audit records for building reports."""

    lake: Lakehouse
    index_: AuditIndex | None = None
    cited: set[str] = field(default_factory=set)          # component runs the report relies on

    @cached_property
    def index(self) -> AuditIndex:
        return self.index_ or AuditIndex(self.lake)

    @cached_property
    def checks(self) -> pd.DataFrame:
        return self.lake.store.read(CHECK_RESULTS)

    @cached_property
    def metrics(self) -> pd.DataFrame:
        return self.lake.store.read(METRICS)

    @cached_property
    def alert_events(self) -> pd.DataFrame:
        return self.lake.store.read(ALERTS)

    @cached_property
    def anomalies(self) -> pd.DataFrame:
        return self.lake.store.read(ANOMALIES)

    @cached_property
    def sla_evaluations(self) -> pd.DataFrame:
        return self.lake.store.read(SLA_EVALUATIONS)

    @cached_property
    def retention_checks(self) -> pd.DataFrame:
        return self.lake.store.read(RETENTION_CHECKS)

    # -- runs -----------------------------------------------------------------------------------
    @cached_property
    def run_days(self) -> pd.Series:
        """run id -> the day of the data it processed (see :func:`data_day`)."""
        runs = self.index.runs
        return pd.Series([data_day(p, s) for p, s in zip(runs["partition_key"], runs["started_at"], strict=True)],
                         index=runs.index, dtype=object)

    def record(self, run_id: str) -> dict[str, Any]:
        self.cited.add(run_id)
        return self.index.record(run_id)

    def checks_of(self, run_ids: set[str] | list[str]) -> pd.DataFrame:
        frame = self.checks
        if frame.empty:
            return frame
        return frame[frame["run_id"].isin(set(run_ids))]

    def registered_versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every model version registered by a recorded run: name, version, registering run."""
        models = self.index.models
        if models.empty:
            return []
        hit = models[models["role"] == "registered"]
        if name is not None:
            hit = hit[hit["name"] == name]
        out = []
        for rec in hit.drop_duplicates(["name", "version"]).to_dict("records"):
            out.append({"name": rec["name"], "version": str(rec["version"]), "run_id": rec["run_id"],
                        "uri": rec.get("uri"), "mlflow_run_id": rec.get("mlflow_run_id")})
        return sorted(out, key=lambda r: (r["name"], _version_order(r["version"])))

    # -- drift verdicts -------------------------------------------------------------------------
    @cached_property
    def drift_tables(self) -> dict[str, str]:
        """Data tables that hold drift verdicts (found by their columns, not by name)."""
        from tracelake.lineage.query.sql import data_tables

        found = {}
        for name, path in data_tables(self.lake).items():
            try:
                names = set(pa.schema(DeltaTable(path).schema().to_arrow()).names)
            except TableNotFoundError:  # removed since it was listed; anything else must surface
                continue
            if DRIFT_MARKER_COLUMNS <= names:
                found[name] = path
        return found

    @cached_property
    def drift(self) -> pd.DataFrame:
        """Whole-table drift verdicts (slice ``all``) of every drift table, latest version."""
        frames = []
        wanted = ["table_name", "column_name", "kind", "slice_key", "window_start", "window_end", "reference_kind",
                  "reference", "reference_table", "reference_version", "model", "method", "score", "threshold",
                  "drifted", "evidently_method", "evidently_score", "evidently_drifted", "verdicts_agree",
                  "report_html", "report_json", "_tl_run_id"]
        for name, path in self.drift_tables.items():
            dt = DeltaTable(path)
            names = set(pa.schema(dt.schema().to_arrow()).names)
            data = dt.to_pyarrow_table(columns=[c for c in wanted if c in names])
            data = data.filter(pc.equal(data.column("slice_key"), "all"))
            frame = data.to_pandas()
            frame["drift_table"] = name
            frame["drift_table_version"] = dt.version()
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=[*wanted, "drift_table", "drift_table_version"])
        out = pd.concat(frames, ignore_index=True)
        out["day"] = [pd.Timestamp(t).date() if t is not None and t == t else None for t in out["window_start"]]
        return out

    # -- chain heads ----------------------------------------------------------------------------
    def chain_heads(self) -> list[dict[str, Any]]:
        """Per audit table and journal: records, newest chain position and its hash, right now."""
        store = self.lake.store
        out = []
        for table in store.tables():
            cols = ["journal_id", "chain_seq", "record_hash"]
            parts = []
            path = store.path(table)
            try:
                parts.append(DeltaTable(path).to_pyarrow_table(columns=cols))
            except TableNotFoundError:  # not flushed yet: the journal holds all of it
                pass
            pending = [{c: e.row.get(c) for c in cols} for e in store.journal.pending(table)]
            if pending:
                parts.append(pa.Table.from_pylist(pending, schema=pa.schema([("journal_id", pa.string()),
                                                                            ("chain_seq", pa.int64()),
                                                                            ("record_hash", pa.string())])))
            if not parts:
                continue
            frame = pa.concat_tables(parts).to_pandas().drop_duplicates(["journal_id", "chain_seq"])
            for journal_id, rows in frame.groupby("journal_id"):
                top = rows.sort_values("chain_seq").iloc[-1]
                out.append({"table": table, "journal_id": journal_id, "records": len(rows),
                            "chain_seq": int(top["chain_seq"]), "record_hash": top["record_hash"]})
        return out

    def cited_records(self) -> list[dict[str, Any]]:
        """(run id, record hash) of every component run the report cites."""
        table = self.index.table
        if not self.cited:
            return []
        ids = table.column("run_id")
        mask = pc.is_in(ids, value_set=pa.array(sorted(self.cited), pa.string()))
        hit = table.filter(mask).select(["run_id", "chain_seq", "record_hash"]).to_pylist()
        seen: dict[str, dict[str, Any]] = {}
        for r in hit:
            seen.setdefault(r["run_id"], r)
        return [{"run_id": k, "chain_seq": v["chain_seq"], "record_hash": v["record_hash"]}
                for k, v in sorted(seen.items())]


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if str(version).isdigit() else (10**9, str(version))


def now_utc() -> datetime:
    return datetime.now(UTC)
