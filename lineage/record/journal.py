"""The durable audit journal: every audit record is written here first, synchronously.

Why a journal: a synchronous Delta commit per audit record costs ~40-70 ms and leaves a table of
one-row files; a SQLite insert in WAL mode with ``synchronous=FULL`` costs about a millisecond
and survives a crash as soon as it returns. Records are later flushed to the Delta audit tables
in batches (see ``audit_store``), idempotently, and queries read the journal's unflushed tail
together with the Delta tables, so nothing is ever invisible.

What lives here:
- ``open`` markers: a component run that has started and not finished. A marker that outlives
  its process is how a killed run is told apart from a succeeded one (reconciliation turns it
  into an ``abandoned`` record).
- ``final`` records: chained per audit table (``prev_hash`` -> ``record_hash``), so rewriting or
  deleting any record later is detectable by ``tracelake audit verify``.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracelake.lineage.record.audit_tables import COMPONENT_RUNS, AuditTable
from tracelake.lineage.record.chain import chain_hash, decode_payload, encode_payload, normalize_row
from tracelake.lineage.record.errors_text import storage_problem

__all__ = ["Journal", "JournalEntry", "OpenRun", "RunAlreadyFinished", "open_journal"]

log = logging.getLogger("tracelake.journal")


class RunAlreadyFinished(RuntimeError):
    """A run's end was recorded already: a run is finished exactly once, whoever races."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS open_runs (
    run_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    chain_seq INTEGER NOT NULL,
    payload TEXT NOT NULL,
    record_hash TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_tbl ON entries (tbl, seq);
CREATE TABLE IF NOT EXISTS chain_heads (
    tbl TEXT PRIMARY KEY,
    chain_seq INTEGER NOT NULL,
    record_hash TEXT NOT NULL
);
"""


def _tbl(table: AuditTable | str) -> str:
    return table.name if isinstance(table, AuditTable) else table


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


class Journal:
    """One SQLite file per journal directory; safe for many threads and processes on one host."""

    def __init__(self, directory: str | Path, on_commit: Callable[[str, str, int, str], None] | None = None):
        """``on_commit(table, journal_id, chain_seq, record_hash)`` hears every new chain head
        after it is durable (the anchors)."""
        self.directory = Path(directory)
        self.on_commit = on_commit
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "journal.sqlite"
        self._local = threading.local()
        self._schemas_saved: dict[str, Any] = {}
        try:
            self.journal_id = self._init()
        except sqlite3.Error as exc:  # SQLite says "unable to open database file": say why, before any run starts
            problem = storage_problem(self.directory)
            if problem is None:
                raise
            raise OSError(problem[0], f"{problem[1]}: the audit journal {self.path} cannot be written ({exc}); "
                                      "no run can be recorded, so none can start") from exc

    # -- connection handling ---------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None or getattr(self._local, "pid", None) != os.getpid():
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=True)
            con.execute("PRAGMA journal_mode=WAL")
            # FULL: a record is on disk when the call returns, so a crash right after loses nothing.
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA busy_timeout=60000")
            self._local.con = con
            self._local.pid = os.getpid()
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._connect()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")

    def _init(self) -> str:
        con = self._connect()
        con.executescript(_SCHEMA)
        with self._tx() as tx:
            row = tx.execute("SELECT value FROM meta WHERE key='journal_id'").fetchone()
            if row:
                return row[0]
            jid = uuid.uuid4().hex
            tx.execute("INSERT INTO meta(key, value) VALUES ('journal_id', ?)", (jid,))
            return jid

    # -- open markers ----------------------------------------------------------------------
    def open_run(self, run_id: str, row: Mapping[str, Any]) -> None:
        """Durably note that a run started (before any of its work happens)."""
        with self._tx() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO open_runs(run_id, payload, host, pid, started_at) VALUES (?,?,?,?,?)",
                (run_id, encode_payload(row), socket.gethostname(), os.getpid(), time.time()),
            )

    def open_runs(self) -> list[OpenRun]:
        rows = self._connect().execute(
            "SELECT run_id, payload, host, pid, started_at FROM open_runs ORDER BY run_id"
        ).fetchall()
        schema = COMPONENT_RUNS.schema
        return [OpenRun(r[0], decode_payload(r[1], schema), r[2], r[3], r[4]) for r in rows]

    # -- final records ---------------------------------------------------------------------
    def append(self, table: AuditTable, key: str, row: Mapping[str, Any], *, close_run: str | None = None) -> dict[str, Any]:
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
            head = tx.execute("SELECT chain_seq, record_hash FROM chain_heads WHERE tbl=?", (name,)).fetchone()
            chain_seq = (head[0] + 1) if head else 0
            prev = head[1] if head else None
            now = datetime.now(UTC)
            for key, row in items:
                record = dict(row)
                record.update(journal_id=self.journal_id, chain_seq=chain_seq, prev_hash=prev,
                              record_hash=None, recorded_at=now)
                normalized = normalize_row(record, schema)
                normalized["record_hash"] = chain_hash(prev, normalized)
                tx.execute(
                    "INSERT INTO entries(tbl, key, chain_seq, payload, record_hash, created_at) VALUES (?,?,?,?,?,?)",
                    (name, key, chain_seq, encode_payload(normalized), normalized["record_hash"], time.time()),
                )
                out.append(normalized)
                prev, chain_seq = normalized["record_hash"], chain_seq + 1
            if out:
                tx.execute(
                    "INSERT OR REPLACE INTO chain_heads(tbl, chain_seq, record_hash) VALUES (?,?,?)",
                    (name, chain_seq - 1, prev),
                )
            if close_run is not None:
                # Finishing a run claims its open marker: whoever deletes it first (the run itself,
                # or one of several racing reconcilers) records the end, everyone else is refused.
                if tx.execute("DELETE FROM open_runs WHERE run_id=?", (close_run,)).rowcount != 1:
                    raise RunAlreadyFinished(f"run {close_run} has no open marker: it was already finished "
                                             "(by itself or by reconciliation); nothing was written")
        if out and self.on_commit is not None:
            try:
                self.on_commit(name, self.journal_id, out[-1]["chain_seq"], out[-1]["record_hash"])
            except OSError as exc:  # the record is durable; only its anchor is missing - said loudly
                log.error("could not anchor %s position %s: %s (verify will not see this head anchored)",
                          name, out[-1]["chain_seq"], exc)
        return out

    def _remember_schema(self, table: AuditTable) -> None:
        """Keep each table's schema beside its records, so any process - one that never imported
        the package declaring the table - can decode, flush and verify them. Schemas only grow
        (fields are added, never changed), so the newest one written is the one kept."""
        import base64

        encoded = base64.b64encode(table.schema.serialize().to_pybytes()).decode()
        if self._schemas_saved.get(table.name) == encoded:
            return
        if self.meta(f"schema:{table.name}") != encoded:
            self.set_meta(f"schema:{table.name}", encoded)
        self._schemas_saved[table.name] = encoded

    def saved_schema(self, table: str) -> Any:
        """The Arrow schema journaled records of ``table`` were written with (None if none)."""
        import base64

        import pyarrow as pa

        raw = self.meta(f"schema:{table}")
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(raw))) if raw else None

    def saved_tables(self) -> list[str]:
        """Every audit table this journal ever wrote to."""
        rows = self._connect().execute("SELECT key FROM meta WHERE key LIKE 'schema:%' ORDER BY key").fetchall()
        return [r[0][len("schema:"):] for r in rows]

    def tables_pending(self) -> list[str]:
        return [r[0] for r in self._connect().execute("SELECT DISTINCT tbl FROM entries ORDER BY tbl").fetchall()]

    def pending(self, table: AuditTable | str | None = None, limit: int | None = None) -> list[JournalEntry]:
        sql = "SELECT seq, tbl, key, chain_seq, payload, created_at FROM entries"
        args: list[Any] = []
        if table is not None:
            sql += " WHERE tbl=?"
            args.append(_tbl(table))
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._connect().execute(sql, args).fetchall()
        schemas = {name: self.saved_schema(name) for name in {r[1] for r in rows}}
        return [JournalEntry(r[0], r[1], r[2], r[3], decode_payload(r[4], schemas[r[1]]), r[5]) for r in rows]

    def pending_stats(self) -> tuple[int, float | None]:
        """(number of unflushed records, creation time of the oldest)."""
        count, oldest = self._connect().execute("SELECT COUNT(*), MIN(created_at) FROM entries").fetchone()
        return int(count), oldest

    def chain_head(self, table: AuditTable | str) -> tuple[int, str] | None:
        row = self._connect().execute(
            "SELECT chain_seq, record_hash FROM chain_heads WHERE tbl=?", (_tbl(table),)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def drop_flushed(self, table: AuditTable | str, up_to_chain_seq: int) -> int:
        """Forget records that are safely in Delta (the chain head stays)."""
        with self._tx() as tx:
            cur = tx.execute("DELETE FROM entries WHERE tbl=? AND chain_seq<=?", (_tbl(table), up_to_chain_seq))
            return cur.rowcount

    def meta(self, key: str) -> str | None:
        row = self._connect().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as tx:
            tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?,?)", (key, value))

    @contextmanager
    def flush_lock(self) -> Iterator[None]:
        """One flusher at a time on this host (an flock beside the journal file)."""
        import fcntl

        with open(self.directory / "flush.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def table_lock(self, table_path: str) -> Iterator[None]:
        """Nothing to hold: on a local filesystem Delta's own LogStore commits by atomic rename,
        safe across processes (the PostgreSQL journal locks, for object stores)."""
        yield

    def describe(self) -> dict[str, Any]:
        count, oldest = self.pending_stats()
        return {
            "path": str(self.path),
            "journal_id": self.journal_id,
            "pending_records": count,
            "oldest_pending_age_s": None if oldest is None else round(time.time() - oldest, 1),
            "open_runs": len(self.open_runs()),
        }


def open_journal(directory: str | Path, url: str | None = None, namespace: str = "",
                 on_commit: Callable[[str, str, int, str], None] | None = None) -> Journal:
    """The journal the configuration names: PostgreSQL when ``url`` (``TRACELAKE_JOURNAL_URL``)
    is set - durable off the worker's disk, shared by every machine (``journal_pg``) - else the
    SQLite file in ``directory`` on this machine's disk (the embedded default)."""
    if not url:
        return Journal(directory, on_commit=on_commit)
    from tracelake.lineage.record.journal_pg import PgJournal

    return PgJournal(url, namespace, directory, on_commit=on_commit)  # type: ignore[return-value]
