"""The audit store: Delta audit tables fed in batches from the durable journal.

Writes go journal-first (milliseconds, durable) and reach the Delta tables in batches through
delta-rs, each batch one idempotent commit: the commit carries a Delta *transaction* (app id =
journal, version = last chain position written), so a flush that crashed after committing is
never written twice. Spark reads these tables like any other, with time travel.

Reads union the Delta table with the journal's unflushed tail (and, for component runs, the
open-run markers), so a query never misses a record because a flush has not happened yet. A
record that is both flushed and still in the tail (a flush killed before it trimmed the
journal) is one record, not two: rows are identified by (journal, chain position) everywhere.

Which tables exist is a fact of the lakehouse, not of the code that happens to be imported:
``tables()`` lists every chained table under ``<home>/audit`` and every table the journal holds
records of, and each table's schema is read from the journal or from the Delta table itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from tracelake.lineage.layout import Layout
from tracelake.lineage.record.audit_tables import CHAIN_FIELDS, COMPONENT_RUNS, CORE_AUDIT_TABLES, AuditTable
from tracelake.lineage.record.chain import normalize_row
from tracelake.lineage.record.failpoints import failpoint
from tracelake.lineage.record.journal import Journal

__all__ = ["AuditStore", "TableRef", "UnknownAuditTable"]

log = logging.getLogger("tracelake.audit")

TableRef: TypeAlias = AuditTable | str
_CHAIN_NAMES = {f.name for f in CHAIN_FIELDS}


class UnknownAuditTable(KeyError):
    """No audit table of that name in this lakehouse (nor any journaled record of one)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _name(table: TableRef) -> str:
    return table.name if isinstance(table, AuditTable) else table


class AuditStore:
    def __init__(self, layout: Layout, journal: Journal, retention_interval: str,
                 storage_options: dict[str, str] | None = None):
        self.layout = layout
        self.journal = journal
        self.retention_interval = retention_interval
        self.storage_options = storage_options
        self._flush_thread_lock = threading.Lock()
        self._core_ready = False

    # -- which tables, with which schema -------------------------------------------------------
    def path(self, table: TableRef) -> str:
        return self.layout.audit(_name(table))

    def tables(self) -> list[str]:
        """Every chained audit table of this lakehouse: on disk under ``audit/``, or journaled."""
        found = set(self.journal.saved_tables()) | set(self.journal.tables_pending())
        if self.layout.is_local:
            root = self.layout.local_path(self.layout.audit_root)
            if root.is_dir():
                found |= {p.name for p in root.iterdir() if (p / "_delta_log").is_dir()}
        else:
            found |= set(self._remote_table_names())
        return sorted(found)

    def _remote_table_names(self) -> list[str]:
        from pyarrow import fs as pafs

        from tracelake.lineage.settings import arrow_filesystem

        filesystem, root = arrow_filesystem(self.layout.audit_root)
        infos = filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True))
        return [i.base_name for i in infos if i.type == pafs.FileType.Directory]

    def schema_of(self, table: TableRef) -> pa.Schema:
        """The table's schema: the declared one, else the journal's copy, else the Delta table's."""
        if isinstance(table, AuditTable):
            return table.schema
        saved = self.journal.saved_schema(table)
        if saved is not None:
            return saved
        try:
            return pa.schema(DeltaTable(self.path(table), storage_options=self.storage_options).schema().to_arrow())
        except TableNotFoundError:
            raise UnknownAuditTable(f"no audit table {table!r} in {self.layout.home}; "
                                    f"it holds: {', '.join(self.tables()) or 'none yet'}") from None

    def table_properties(self) -> dict[str, str]:
        return {
            "delta.logRetentionDuration": self.retention_interval,
            "delta.deletedFileRetentionDuration": self.retention_interval,
        }

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def _flush_lock(self) -> Iterator[None]:
        # The journal knows its reach: an flock on one host, an advisory lock across machines.
        with self._flush_thread_lock, self.journal.flush_lock():
            yield

    def _app_id(self, table: str) -> str:
        return f"tracelake-journal-{self.journal.journal_id}-{table}"

    def _written_up_to(self, path: str, app_id: str) -> int:
        try:
            dt = DeltaTable(path, storage_options=self.storage_options)
        except TableNotFoundError:
            return -1
        version = dt.transaction_version(app_id)
        return -1 if version is None else int(version)

    def flush(self, tables: Sequence[TableRef] | None = None) -> dict[str, int]:
        """Write every journaled record to its Delta table; returns records written per table."""
        written: dict[str, int] = {}
        with self._flush_lock():
            names = [_name(t) for t in tables] if tables is not None else self.journal.tables_pending()
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
                    self._ensure_core_tables()
                    self._append(table, path, [e.row for e in todo], app_id, last)
                failpoint("flush_after_commit", table=table)
                self.journal.drop_flushed(table, last)
                written[table] = len(todo)
        return written

    def _ensure_core_tables(self) -> None:
        """The core's audit tables exist from a lakehouse's first flush on, so SQL can name every
        one of them (``audit.flags`` before the first flag) without a reader ever writing."""
        if self._core_ready:
            return
        for core in CORE_AUDIT_TABLES:
            self.ensure_table(core)
        self._core_ready = True

    def _append(self, table: str, path: str, rows: list[dict[str, Any]], app_id: str, last_seq: int) -> None:
        data = pa.Table.from_pylist(rows, schema=self.schema_of(table))
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

    def ensure_table(self, table: AuditTable) -> str:
        """Create an empty audit table (with retention properties) if it does not exist yet."""
        path = self.path(table)
        if not DeltaTable.is_deltatable(path, storage_options=self.storage_options):
            try:
                DeltaTable.create(path, table.schema, mode="ignore", configuration=self.table_properties(),
                                  storage_options=self.storage_options)
            except CommitFailedError:
                pass  # created concurrently by another process: that is what we wanted
        return path

    def append_record(self, table: AuditTable, key: str, row: dict[str, Any]) -> dict[str, Any]:
        """Journal one chained record (durable on return)."""
        return self.journal.append(table, key, row)

    # -- reading -----------------------------------------------------------------------------
    def read_delta(self, table: TableRef, version: int | None = None, *, columns: Sequence[str] | None = None,
                   where: Mapping[str, Any] | None = None) -> pa.Table:
        """The flushed rows, aligned to the table's schema (fields added later read as null);
        only ``columns`` and the rows whose values equal ``where``'s, when given."""
        schema = _projected(self.schema_of(table), columns)
        try:
            dt = DeltaTable(self.path(table), version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            return schema.empty_table()
        if columns is None and not where:
            data = dt.to_pyarrow_table()
        else:
            import pyarrow.dataset as ds

            stored = set(dt.schema().to_arrow().names)
            wanted = [f.name for f in schema if f.name in stored]
            if where and not set(where) <= stored:     # filtering on a column the table never had
                return schema.empty_table()
            condition = None
            for key, value in (where or {}).items():
                term = ds.field(key) == value
                condition = term if condition is None else condition & term
            data = dt.to_pyarrow_dataset().to_table(columns=wanted, filter=condition)
        if not len(data):
            return schema.empty_table()
        cols = [data.column(f.name) if f.name in data.column_names else pa.nulls(len(data), f.type) for f in schema]
        return pa.Table.from_arrays(cols, schema=schema)

    def read_arrow(self, table: TableRef, include_pending: bool = True, *, columns: Sequence[str] | None = None,
                   where: Mapping[str, Any] | None = None) -> pa.Table:
        """Delta rows plus unflushed journal rows, each record once (see the module docstring).
        ``columns`` and ``where`` (equality per column) narrow what is read: a question about one
        component reads that component's rows of a few columns, not years of every record."""
        if columns is not None:     # a record's identity is needed to read it once
            columns = list(dict.fromkeys([*columns, "journal_id", "chain_seq"]))
        data = self.read_delta(table, columns=columns, where=where)
        if include_pending:
            pending = [e.row for e in self.journal.pending(_name(table))
                       if all(e.row.get(k) == v for k, v in (where or {}).items())]
            if pending:
                data = pa.concat_tables([data, pa.Table.from_pylist(pending, schema=data.schema)])
        return _one_per_position(data)

    def read(self, table: TableRef, include_pending: bool = True) -> pd.DataFrame:
        """Delta rows plus unflushed journal rows, oldest first (by journal and chain position)."""
        frame = self.read_arrow(table, include_pending).to_pandas(maps_as_pydicts="strict", integer_object_nulls=True)
        return frame.sort_values(["recorded_at", "chain_seq"], kind="stable").reset_index(drop=True)

    def component_runs(self, include_open: bool = True) -> pd.DataFrame:
        """Finished runs plus, when asked, runs still open (status ``started``)."""
        frame = self.read(COMPONENT_RUNS)
        if include_open:
            open_rows = [r.row for r in self.journal.open_runs()]
            finished = set(frame["run_id"]) if len(frame) else set()
            open_rows = [r for r in open_rows if r["run_id"] not in finished]
            if open_rows:
                schema = COMPONENT_RUNS.schema
                extra = pa.Table.from_pylist(
                    [normalize_row({**r, "status": "started"}, schema) for r in open_rows], schema=schema
                ).to_pandas(maps_as_pydicts="strict", integer_object_nulls=True)
                frame = pd.concat([frame, extra], ignore_index=True) if len(frame) else extra
        return frame

    # -- maintenance -------------------------------------------------------------------------
    def compact(self, table: TableRef) -> dict[str, Any]:
        """Rewrite small audit files into large ones and checkpoint, so queries stay fast.

        Compaction adds a version and keeps old files for the retention horizon, so time travel
        to before the compaction still works.
        """
        path = self.path(table)
        try:
            dt = DeltaTable(path, storage_options=self.storage_options)
        except TableNotFoundError:
            return {"table": _name(table), "skipped": "no table"}
        metrics = dt.optimize.compact()
        dt = DeltaTable(path, storage_options=self.storage_options)
        dt.create_checkpoint()
        return {"table": _name(table), "version": dt.version(),
                **{k: metrics.get(k) for k in ("numFilesAdded", "numFilesRemoved")}}


def _projected(schema: pa.Schema, columns: Sequence[str] | None) -> pa.Schema:
    if columns is None:
        return schema
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise KeyError(f"no column(s) {unknown} in this audit table (it has: {schema.names})")
    return pa.schema([schema.field(c) for c in columns])


def _one_per_position(data: pa.Table) -> pa.Table:
    """Keep the first row of each (journal, chain position): Delta rows come first, so a record
    both flushed and still journaled reads as its flushed copy."""
    if not len(data):
        return data
    import pyarrow.compute as pc

    keys = pc.binary_join_element_wise(pc.cast(data.column("journal_id"), pa.string()),
                                       pc.cast(data.column("chain_seq"), pa.string()), "#")
    seen: set[str] = set()
    keep = []
    for i, k in enumerate(keys.to_pylist()):
        if k not in seen:
            seen.add(k)
            keep.append(i)
    return data if len(keep) == len(data) else data.take(pa.array(keep))
