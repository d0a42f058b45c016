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

This module stores them in SQLite; how records are chained is ``journal_chain``, shared with the
PostgreSQL journal (``journal_pg``).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tracelake.lineage.record.audit_tables import AuditTable
from tracelake.lineage.record.chain import encode_payload
from tracelake.lineage.record.errors_text import storage_problem
from tracelake.lineage.record.journal_chain import (
    ChainedJournal,
    JournalEntry,
    OpenRun,
    RunAlreadyFinished,
    table_name,
)

__all__ = ["ChainedJournal", "Journal", "JournalEntry", "OpenRun", "RunAlreadyFinished", "open_journal"]

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


class Journal(ChainedJournal):
    """One SQLite file per journal directory; safe for many threads and processes on one host."""

    def __init__(self, directory: str | Path, on_commit: Callable[[str, str, int, str], None] | None = None):
        """``on_commit(table, journal_id, chain_seq, record_hash)`` hears every new chain head
        after it is durable (the anchors)."""
        self.directory = Path(directory)
        self.on_commit = on_commit
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "journal.sqlite"
        self._local = threading.local()
        self._schemas_saved: dict[str, str] = {}
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

    def _open_run_rows(self) -> list[tuple[Any, ...]]:
        return self._connect().execute(
            "SELECT run_id, payload, host, pid, started_at FROM open_runs ORDER BY run_id"
        ).fetchall()

    # -- chained records (the chaining itself: ``journal_chain``) ---------------------------
    def _lock_head(self, tx: sqlite3.Connection, table: str) -> tuple[int, str | None]:
        # BEGIN IMMEDIATE already holds the database's write lock: writers queue on it.
        head = tx.execute("SELECT chain_seq, record_hash FROM chain_heads WHERE tbl=?", (table,)).fetchone()
        return (head[0], head[1]) if head else (-1, None)

    def _insert_entry(self, tx: sqlite3.Connection, table: str, key: str, chain_seq: int, payload: str,
                      record_hash: str) -> None:
        tx.execute(
            "INSERT INTO entries(tbl, key, chain_seq, payload, record_hash, created_at) VALUES (?,?,?,?,?,?)",
            (table, key, chain_seq, payload, record_hash, time.time()),
        )

    def _move_head(self, tx: sqlite3.Connection, table: str, chain_seq: int, record_hash: str) -> None:
        tx.execute(
            "INSERT OR REPLACE INTO chain_heads(tbl, chain_seq, record_hash) VALUES (?,?,?)",
            (table, chain_seq, record_hash),
        )

    def _delete_open_marker(self, tx: sqlite3.Connection, run_id: str) -> int:
        return tx.execute("DELETE FROM open_runs WHERE run_id=?", (run_id,)).rowcount

    def saved_tables(self) -> list[str]:
        """Every audit table this journal ever wrote to."""
        rows = self._connect().execute("SELECT key FROM meta WHERE key LIKE 'schema:%' ORDER BY key").fetchall()
        return [r[0][len("schema:"):] for r in rows]

    def tables_pending(self) -> list[str]:
        return [r[0] for r in self._connect().execute("SELECT DISTINCT tbl FROM entries ORDER BY tbl").fetchall()]

    def _pending_rows(self, table: str | None, limit: int | None) -> list[tuple[Any, ...]]:
        sql = "SELECT seq, tbl, key, chain_seq, payload, created_at FROM entries"
        args: list[Any] = []
        if table is not None:
            sql += " WHERE tbl=?"
            args.append(table)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._connect().execute(sql, args).fetchall()

    def pending_stats(self) -> tuple[int, float | None]:
        """(number of unflushed records, creation time of the oldest)."""
        count, oldest = self._connect().execute("SELECT COUNT(*), MIN(created_at) FROM entries").fetchone()
        return int(count), oldest

    def chain_head(self, table: AuditTable | str) -> tuple[int, str] | None:
        row = self._connect().execute(
            "SELECT chain_seq, record_hash FROM chain_heads WHERE tbl=?", (table_name(table),)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def drop_flushed(self, table: AuditTable | str, up_to_chain_seq: int) -> int:
        """Forget records that are safely in Delta (the chain head stays)."""
        with self._tx() as tx:
            cur = tx.execute("DELETE FROM entries WHERE tbl=? AND chain_seq<=?", (table_name(table), up_to_chain_seq))
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


def open_journal(directory: str | Path, url: str | None = None, namespace: str = "",
                 on_commit: Callable[[str, str, int, str], None] | None = None) -> ChainedJournal:
    """The journal the configuration names: PostgreSQL when ``url`` (``TRACELAKE_JOURNAL_URL``)
    is set - durable off the worker's disk, shared by every machine (``journal_pg``) - else the
    SQLite file in ``directory`` on this machine's disk (the embedded default)."""
    if not url:
        return Journal(directory, on_commit=on_commit)
    from tracelake.lineage.record.journal_pg import PgJournal

    return PgJournal(url, namespace, directory, on_commit=on_commit)
