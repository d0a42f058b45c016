"""The audit store: Delta audit tables fed in batches from the durable journal.

Writes go journal-first (milliseconds, durable) and reach the Delta tables in batches through
delta-rs, each batch one idempotent commit: the commit carries a Delta *transaction* (app id =
journal, version = last chain position written), so a flush that crashed after committing is
never written twice. Spark reads these tables like any other, with time travel.

Reads (``read``/``component_runs``) union the Delta table with the journal's unflushed tail and
the open-run markers, so a query never misses a record because a flush has not happened yet.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import pandas as pd
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from tracelake.lineage.record.audit_tables import AUDIT_TABLES, COMPONENT_RUNS, audit_schema, chain_hash, normalize_row
from tracelake.lineage.record.journal import Journal
from tracelake.lineage.layout import Layout

__all__ = ["AuditStore", "ChainReport"]

log = logging.getLogger("tracelake.audit")


@dataclass
class ChainReport:
    table: str
    records: int
    chains: int
    ok: bool
    problems: list[str]


class AuditStore:
    def __init__(self, layout: Layout, journal: Journal, retention_interval: str,
                 storage_options: dict[str, str] | None = None):
        self.layout = layout
        self.journal = journal
        self.retention_interval = retention_interval
        self.storage_options = storage_options
        self._flush_thread_lock = threading.Lock()

    # -- writing -----------------------------------------------------------------------------
    def table_properties(self) -> dict[str, str]:
        return {
            "delta.logRetentionDuration": self.retention_interval,
            "delta.deletedFileRetentionDuration": self.retention_interval,
        }

    def path(self, table: str) -> str:
        audit_schema(table)  # unknown names fail loudly
        return self.layout.audit(table)

    @contextmanager
    def _flush_lock(self) -> Iterator[None]:
        lock_path = self.journal.directory / "flush.lock"
        with self._flush_thread_lock, open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _app_id(self, table: str) -> str:
        return f"tracelake-journal-{self.journal.journal_id}-{table}"

    def _written_up_to(self, path: str, app_id: str) -> int:
        try:
            dt = DeltaTable(path, storage_options=self.storage_options)
        except TableNotFoundError:
            return -1
        version = dt.transaction_version(app_id)
        return -1 if version is None else int(version)

    def flush(self, tables: Sequence[str] | None = None) -> dict[str, int]:
        """Write every journaled record to its Delta table; returns records written per table."""
        written: dict[str, int] = {}
        with self._flush_lock():
            names = list(tables) if tables is not None else sorted(set(AUDIT_TABLES) | set(self.journal.tables_pending()))
            for table in names:
                entries = self.journal.pending(table)
                if not entries:
                    continue
                path = self.path(table)
                app_id = self._app_id(table)
                done = self._written_up_to(path, app_id)
                todo = [e for e in entries if e.chain_seq > done]
                last = entries[-1].chain_seq
                if todo:
                    self._append(table, path, [e.row for e in todo], app_id, last)
                self.journal.drop_flushed(table, last)
                written[table] = len(todo)
        return written

    def _append(self, table: str, path: str, rows: list[dict[str, Any]], app_id: str, last_seq: int) -> None:
        schema = audit_schema(table)
        data = pa.Table.from_pylist(rows, schema=schema)
        props = CommitProperties(
            custom_metadata={"tracelake": "audit-flush", "journal_id": self.journal.journal_id,
                             "last_chain_seq": str(last_seq)},
            app_transactions=[Transaction(app_id=app_id, version=last_seq)],
            max_commit_retries=50,
        )
        for attempt in range(5):
            exists = DeltaTable.is_deltatable(path, storage_options=self.storage_options)
            try:
                write_deltalake(
                    path, data, mode="append", schema_mode="merge",
                    configuration=None if exists else self.table_properties(),
                    storage_options=self.storage_options, commit_properties=props,
                )
                return
            except CommitFailedError:
                # Two processes created the table at once; the loser appends on the next try.
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def flush_if_due(self, max_records: int, max_age_s: float) -> bool:
        count, oldest = self.journal.pending_stats()
        if count == 0:
            return False
        if count >= max_records or (oldest is not None and time.time() - oldest >= max_age_s):
            self.flush()
            return True
        return False

    def ensure_table(self, table: str) -> str:
        """Create an empty audit table (with retention properties) if it does not exist yet."""
        path = self.path(table)
        if not DeltaTable.is_deltatable(path, storage_options=self.storage_options):
            try:
                DeltaTable.create(path, audit_schema(table), mode="ignore",
                                  configuration=self.table_properties(),
                                  storage_options=self.storage_options)
            except CommitFailedError:
                pass  # created concurrently by another process: that is what we wanted
        return path

    def append_record(self, table: str, key: str, row: dict[str, Any]) -> dict[str, Any]:
        """Journal one chained record (durable on return)."""
        return self.journal.append(table, key, row)

    # -- reading -----------------------------------------------------------------------------
    def read_delta(self, table: str, version: int | None = None) -> pa.Table:
        path = self.path(table)
        schema = audit_schema(table)
        try:
            dt = DeltaTable(path, version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            return schema.empty_table()
        data = dt.to_pyarrow_table()
        # Align to the current schema: fields added after old commits read as null.
        cols = [data.column(f.name) if f.name in data.column_names else pa.nulls(len(data), f.type) for f in schema]
        return pa.Table.from_arrays(cols, schema=schema) if len(data) else schema.empty_table()

    def read_arrow(self, table: str, include_pending: bool = True) -> pa.Table:
        """Delta rows plus unflushed journal rows (a flushed record may briefly be in both)."""
        schema = audit_schema(table)
        parts = [self.read_delta(table)]
        if include_pending:
            pending = [e.row for e in self.journal.pending(table)]
            if pending:
                parts.append(pa.Table.from_pylist(pending, schema=schema))
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def read(self, table: str, include_pending: bool = True) -> pd.DataFrame:
        """Delta rows plus unflushed journal rows, oldest first (by journal and chain position)."""
        schema = audit_schema(table)
        frame = self.read_arrow(table, include_pending).to_pandas(maps_as_pydicts="strict", integer_object_nulls=True)
        key = schema.names[0]
        frame = frame.drop_duplicates(subset=[key, "journal_id", "chain_seq"], keep="first")
        return frame.sort_values(["recorded_at", "chain_seq"], kind="stable").reset_index(drop=True)

    def component_runs(self, include_open: bool = True) -> pd.DataFrame:
        """Finished runs plus, when asked, runs still open (status ``started``)."""
        frame = self.read(COMPONENT_RUNS)
        if include_open:
            open_rows = [r.row for r in self.journal.open_runs()]
            finished = set(frame["run_id"]) if len(frame) else set()
            open_rows = [r for r in open_rows if r["run_id"] not in finished]
            if open_rows:
                schema = audit_schema(COMPONENT_RUNS)
                extra = pa.Table.from_pylist(
                    [normalize_row({**r, "status": "started"}, schema) for r in open_rows], schema=schema
                ).to_pandas(maps_as_pydicts="strict", integer_object_nulls=True)
                frame = pd.concat([frame, extra], ignore_index=True) if len(frame) else extra
        return frame

    # -- integrity ---------------------------------------------------------------------------
    def verify_chain(self, table: str) -> ChainReport:
        """Recompute every record hash and link of ``table`` (Delta + journal tail)."""
        schema = audit_schema(table)
        rows = pa.concat_tables(
            [self.read_delta(table)]
            + ([pa.Table.from_pylist([e.row for e in self.journal.pending(table)], schema=schema)]
               if self.journal.pending(table) else [])
        ).to_pylist()
        problems: list[str] = []
        by_chain: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_chain.setdefault(row["journal_id"], []).append(row)
        key = schema.names[0]
        for journal_id, chain in by_chain.items():
            chain.sort(key=lambda r: r["chain_seq"])
            prev_hash, expected = None, 0
            for row in chain:
                if row["chain_seq"] != expected:
                    problems.append(
                        f"{table}: chain {journal_id[:8]} is missing positions {expected}..{row['chain_seq'] - 1}"
                        " (records deleted)")
                elif row["prev_hash"] != prev_hash:
                    problems.append(f"{table}: record {row[key]} does not link to the record before it")
                if chain_hash(row["prev_hash"], row) != row["record_hash"]:
                    problems.append(f"{table}: record {row[key]} was modified after it was written")
                prev_hash, expected = row["record_hash"], row["chain_seq"] + 1
            head = self.journal.chain_head(table) if journal_id == self.journal.journal_id else None
            if head is not None and chain and head[0] != chain[-1]["chain_seq"]:
                problems.append(f"{table}: newest record is position {chain[-1]['chain_seq']} but the journal head is {head[0]} (records missing at the end)")
        return ChainReport(table, len(rows), len(by_chain), not problems, problems)

    def compact(self, table: str) -> dict[str, Any]:
        """Rewrite small audit files into large ones and checkpoint, so queries stay fast.

        Compaction adds a version and keeps old files for the retention horizon, so time travel
        to before the compaction still works.
        """
        path = self.path(table)
        try:
            dt = DeltaTable(path, storage_options=self.storage_options)
        except TableNotFoundError:
            return {"table": table, "skipped": "no table"}
        metrics = dt.optimize.compact()
        dt = DeltaTable(path, storage_options=self.storage_options)
        dt.create_checkpoint()
        return {"table": table, "version": dt.version(), **{k: metrics.get(k) for k in ("numFilesAdded", "numFilesRemoved")}}
