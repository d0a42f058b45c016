"""What every audit journal does the same way, whatever stores it: chaining records.

A final record is chained inside the transaction that stores it: the table's chain head is read
(and held, so concurrent writers queue), each record gets the next ``chain_seq``, the previous
record's hash as ``prev_hash`` and its own ``record_hash``, the head moves to the last record,
and - when a run finishes - the run's open marker is claimed in the same transaction. Only
after the commit is the new head announced (the anchors). The SQLite journal (``journal``) and
the PostgreSQL journal (``journal_pg``) differ only in how they store rows, so they share this
one implementation: the chain a record joins, and so its hash, cannot differ between them.

Also shared: each table's Arrow schema kept beside its records (``schema:<table>`` in the
journal's metadata), and the decoding of open markers and pending records.
"""

from __future__ import annotations

import base64
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracelake.lineage.record.audit_tables import COMPONENT_RUNS, AuditTable
from tracelake.lineage.record.chain import chain_hash, decode_payload, encode_payload, normalize_row

__all__ = ["ChainedJournal", "JournalEntry", "OpenRun", "RunAlreadyFinished", "table_name"]

log = logging.getLogger("tracelake.journal")

OnCommit = Callable[[str, str, int, str], None]


class RunAlreadyFinished(RuntimeError):
    """A run's end was recorded already: a run is finished exactly once, whoever races."""


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    table: str
    key: str
    chain_seq: int
    row: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class OpenRun:
    run_id: str
    row: dict[str, Any]
    host: str
    pid: int
    started_at: float


def table_name(table: AuditTable | str) -> str:
    return table.name if isinstance(table, AuditTable) else table


class ChainedJournal(ABC):
    """The journal's interface and its storage-independent half. A subclass stores rows: it
    opens transactions and reads and writes heads, entries, open markers and metadata."""

    journal_id: str
    on_commit: OnCommit | None
    directory: Path
    path: Any
    _schemas_saved: dict[str, str]

    # -- storage: what a subclass provides -------------------------------------------------
    @abstractmethod
    def _tx(self) -> AbstractContextManager[Any]:
        """One durable transaction (committed on success, rolled back on any exception)."""

    @abstractmethod
    def _lock_head(self, tx: Any, table: str) -> tuple[int, str | None]:
        """The table's chain head ``(chain_seq, record_hash)``, ``(-1, None)`` for a new chain,
        held until ``tx`` ends so that writers of one table queue."""

    @abstractmethod
    def _insert_entry(self, tx: Any, table: str, key: str, chain_seq: int, payload: str, record_hash: str) -> None:
        """Store one chained record."""

    @abstractmethod
    def _move_head(self, tx: Any, table: str, chain_seq: int, record_hash: str) -> None:
        """Make the table's chain head the record just stored."""

    @abstractmethod
    def _delete_open_marker(self, tx: Any, run_id: str) -> int:
        """Remove a run's open marker; returns how many were removed (0 or 1)."""

    @abstractmethod
    def _open_run_rows(self) -> list[tuple[Any, ...]]:
        """``(run_id, payload, host, pid, started_at)`` of every open marker, by run id."""

    @abstractmethod
    def _pending_rows(self, table: str | None, limit: int | None) -> list[tuple[Any, ...]]:
        """``(seq, tbl, key, chain_seq, payload, created_at)`` of unflushed records, in order."""

    @abstractmethod
    def meta(self, key: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    @abstractmethod
    def pending_stats(self) -> tuple[int, float | None]:
        """(number of unflushed records, creation time of the oldest)."""

    @abstractmethod
    def saved_tables(self) -> list[str]:
        """Every audit table this journal ever wrote to."""

    @abstractmethod
    def tables_pending(self) -> list[str]: ...

    @abstractmethod
    def chain_head(self, table: AuditTable | str) -> tuple[int, str] | None: ...

    @abstractmethod
    def drop_flushed(self, table: AuditTable | str, up_to_chain_seq: int) -> int:
        """Forget records that are safely in Delta (the chain head stays)."""

    @abstractmethod
    def flush_lock(self) -> AbstractContextManager[None]:
        """One flusher at a time."""

    @abstractmethod
    def table_lock(self, table_path: str) -> AbstractContextManager[None]:
        """One Spark commit at a time to a table, where the table's storage needs it."""

    # -- open markers ----------------------------------------------------------------------
    def open_runs(self) -> list[OpenRun]:
        schema = COMPONENT_RUNS.schema
        return [OpenRun(r[0], decode_payload(r[1], schema), r[2], r[3], r[4]) for r in self._open_run_rows()]

    # -- final records ---------------------------------------------------------------------
    def append(self, table: AuditTable, key: str, row: Mapping[str, Any], *,
               close_run: str | None = None) -> dict[str, Any]:
        """Chain and store one final record; returns the record as it will read back from Delta.

        ``close_run`` removes that run's open marker in the same transaction, so there is never a
        moment where a run is neither open nor finished.
        """
        return self.append_many(table, [(key, row)], close_run=close_run)[0]

    def append_many(self, table: AuditTable, items: Sequence[tuple[str, Mapping[str, Any]]], *,
                    close_run: str | None = None) -> list[dict[str, Any]]:
        """Chain several records of one table in one durable transaction (one fsync)."""
        schema = table.schema
        self._remember_schema(table)
        name = table.name
        out: list[dict[str, Any]] = []
        with self._tx() as tx:
            last_seq, prev = self._lock_head(tx, name)
            chain_seq = last_seq + 1
            now = datetime.now(UTC)
            for key, row in items:
                record = dict(row)
                record.update(journal_id=self.journal_id, chain_seq=chain_seq, prev_hash=prev,
                              record_hash=None, recorded_at=now)
                normalized = normalize_row(record, schema)
                normalized["record_hash"] = chain_hash(prev, normalized)
                self._insert_entry(tx, name, key, chain_seq, encode_payload(normalized), normalized["record_hash"])
                out.append(normalized)
                prev, chain_seq = normalized["record_hash"], chain_seq + 1
            if out:
                self._move_head(tx, name, chain_seq - 1, out[-1]["record_hash"])
            # Finishing a run claims its open marker: whoever deletes it first (the run itself,
            # or one of several racing reconcilers) records the end, everyone else is refused.
            if close_run is not None and self._delete_open_marker(tx, close_run) != 1:
                raise RunAlreadyFinished(f"run {close_run} has no open marker: it was already finished "
                                         "(by itself or by reconciliation); nothing was written")
        if out:
            self._announce_head(name, out[-1])
        return out

    def _announce_head(self, table: str, head: Mapping[str, Any]) -> None:
        if self.on_commit is None:
            return
        try:
            self.on_commit(table, self.journal_id, head["chain_seq"], head["record_hash"])
        except OSError as exc:  # the record is durable; only its anchor is missing - said loudly
            log.error("could not anchor %s position %s: %s (verify will not see this head anchored)",
                      table, head["chain_seq"], exc)

    def pending(self, table: AuditTable | str | None = None, limit: int | None = None) -> list[JournalEntry]:
        rows = self._pending_rows(None if table is None else table_name(table), limit)
        schemas = {name: self.saved_schema(name) for name in {r[1] for r in rows}}
        return [JournalEntry(r[0], r[1], r[2], r[3], decode_payload(r[4], schemas[r[1]]), r[5]) for r in rows]

    # -- schemas ---------------------------------------------------------------------------
    def _remember_schema(self, table: AuditTable) -> None:
        """Keep each table's schema beside its records, so any process - one that never imported
        the package declaring the table - can decode, flush and verify them. Schemas only grow
        (fields are added, never changed), so the newest one written is the one kept."""
        encoded = base64.b64encode(table.schema.serialize().to_pybytes()).decode()
        if self._schemas_saved.get(table.name) == encoded:
            return
        if self.meta(f"schema:{table.name}") != encoded:
            self.set_meta(f"schema:{table.name}", encoded)
        self._schemas_saved[table.name] = encoded

    def saved_schema(self, table: str) -> Any:
        """The Arrow schema journaled records of ``table`` were written with (None if none)."""
        import pyarrow as pa

        raw = self.meta(f"schema:{table}")
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(raw))) if raw else None

    def describe(self) -> dict[str, Any]:
        count, oldest = self.pending_stats()
        return {
            "path": str(self.path),
            "journal_id": self.journal_id,
            "pending_records": count,
            "oldest_pending_age_s": None if oldest is None else round(time.time() - oldest, 1),
            "open_runs": len(self.open_runs()),
        }
