"""The audit journal in PostgreSQL: the scale-out profile's journal (``TRACELAKE_JOURNAL_URL``).

Why PostgreSQL and not the object store: the SQLite journal (``journal.py``) sits on the disk of
the machine that runs the pipeline, and a pipeline on ephemeral workers (Kubernetes pods, spot
executors) loses that disk with the machine - taking every record not yet flushed to Delta. The
journal must be durable somewhere the worker is not, *before* the run's Delta commit is
acknowledged. Both candidates are durable; they differ in what a record costs and how records
of many writers are chained:

- PostgreSQL: a record is one transaction (the chain head row locked ``FOR UPDATE``, the entry
  inserted, the open marker removed - atomically), durable when ``COMMIT`` returns
  (``synchronous_commit=on``), a few milliseconds on loopback. Writers on many machines chain
  into one order without any extra protocol. It is also already deployed: Dagster's instance
  and MLflow's backend need it.
- The object store: every record would be a conditional PUT (tens of milliseconds on S3, more
  under contention), and chaining would need a compare-and-swap loop on a head object - each
  writer retrying against every other.

The tables carry a namespace (``ns``: the lakehouse root by default), so one database serves
several lakehouses (a test suite's, a team's) without mixing their chains. Both journals are a
``journal_chain.ChainedJournal`` - one interface, one way of chaining records - so the audit
store, recorder and reconciliation do not know which they have.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tracelake.lineage.record.audit_tables import AuditTable
from tracelake.lineage.record.chain import encode_payload
from tracelake.lineage.record.journal_chain import ChainedJournal, table_name

__all__ = ["PgJournal", "redact_url"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tl_journal_meta (
    ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS tl_open_runs (
    ns TEXT NOT NULL, run_id TEXT NOT NULL, payload TEXT NOT NULL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, started_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (ns, run_id));
CREATE TABLE IF NOT EXISTS tl_journal_entries (
    seq BIGSERIAL PRIMARY KEY, ns TEXT NOT NULL, tbl TEXT NOT NULL, key TEXT NOT NULL,
    chain_seq BIGINT NOT NULL, payload TEXT NOT NULL, record_hash TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, UNIQUE (ns, tbl, chain_seq));
CREATE TABLE IF NOT EXISTS tl_chain_heads (
    ns TEXT NOT NULL, tbl TEXT NOT NULL, chain_seq BIGINT NOT NULL, record_hash TEXT, PRIMARY KEY (ns, tbl));
"""
_DDL_LOCK = 7_305_001  # advisory lock key: concurrent CREATE TABLE IF NOT EXISTS can collide in pg_type


def redact_url(url: str) -> str:
    """The URL without its password (it is shown by `audit status` and written to logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PgJournal(ChainedJournal):
    """The journal's interface (see ``journal_chain.ChainedJournal``) on PostgreSQL, safe for many threads,
    processes and machines. ``directory`` is a local folder for process-local locks only
    (never records)."""

    def __init__(self, url: str, namespace: str, directory: str | Path,
                 on_commit: Callable[[str, str, int, str], None] | None = None):
        self.url = url
        self.ns = namespace
        self.on_commit = on_commit
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = f"{redact_url(url)} (namespace {namespace})"
        self._local = threading.local()
        self._schemas_saved: dict[str, str] = {}
        self.journal_id = self._init()

    # -- connection handling ---------------------------------------------------------------
    def _connect(self) -> Any:
        import psycopg2

        con = getattr(self._local, "con", None)
        if con is None or con.closed or getattr(self._local, "pid", None) != os.getpid():
            con = psycopg2.connect(self.url, application_name="tracelake-journal", connect_timeout=30)
            con.autocommit = True
            self._local.con = con
            self._local.pid = os.getpid()
        return con

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction: committed (durably) on success, rolled back on any exception."""
        con = self._connect()
        con.autocommit = False
        try:
            with con.cursor() as cur:
                yield cur
            con.commit()
        except BaseException:
            con.rollback()
            raise
        finally:
            con.autocommit = True

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._connect().cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def _init(self) -> str:
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            cur.execute(_SCHEMA)
            cur.execute("INSERT INTO tl_journal_meta(ns, key, value) VALUES (%s, 'journal_id', %s) "
                        "ON CONFLICT DO NOTHING", (self.ns, uuid.uuid4().hex))
            cur.execute("SELECT value FROM tl_journal_meta WHERE ns=%s AND key='journal_id'", (self.ns,))
            return cur.fetchone()[0]

    @contextmanager
    def _session_lock(self, application_name: str, lock_name: str) -> Iterator[None]:
        """A session advisory lock on ``lock_name``, held on a connection of its own while the
        ``with`` block runs."""
        import psycopg2

        con = psycopg2.connect(self.url, application_name=application_name, connect_timeout=30)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock_name,))
            yield
        finally:
            con.close()  # ends the session, which releases the lock even if unlock was never sent

    def flush_lock(self) -> AbstractContextManager[None]:
        """One flusher per namespace across every machine, for as long as the flush runs."""
        return self._session_lock("tracelake-flush", f"tracelake-flush:{self.ns}")

    def table_lock(self, table_path: str) -> AbstractContextManager[None]:
        """One Spark commit at a time to a table, across every driver that records into this
        journal. Delta's LogStore for s3a:// (S3SingleDriverLogStore) excludes concurrent commits
        only inside one JVM; two drivers committing the same version can silently lose one.
        delta-rs writers need no such lock (they use conditional puts)."""
        return self._session_lock("tracelake-commit", f"tracelake-commit:{table_path.rstrip('/')}")

    # -- open markers ----------------------------------------------------------------------
    def open_run(self, run_id: str, row: Mapping[str, Any]) -> None:
        """Durably note that a run started (before any of its work happens)."""
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO tl_open_runs(ns, run_id, payload, host, pid, started_at) VALUES (%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (ns, run_id) DO UPDATE SET payload=EXCLUDED.payload, host=EXCLUDED.host, "
                "pid=EXCLUDED.pid, started_at=EXCLUDED.started_at",
                (self.ns, run_id, encode_payload(row), socket.gethostname(), os.getpid(), time.time()))

    def _open_run_rows(self) -> list[tuple[Any, ...]]:
        return self._query("SELECT run_id, payload, host, pid, started_at FROM tl_open_runs WHERE ns=%s "
                           "ORDER BY run_id", (self.ns,))

    # -- chained records (the chaining itself: ``journal_chain``) ---------------------------
    def _lock_head(self, cur: Any, table: str) -> tuple[int, str | None]:
        # The head row is the chain's lock: writers of one table on any machine queue here.
        cur.execute("INSERT INTO tl_chain_heads(ns, tbl, chain_seq, record_hash) VALUES (%s,%s,-1,NULL) "
                    "ON CONFLICT DO NOTHING", (self.ns, table))
        cur.execute("SELECT chain_seq, record_hash FROM tl_chain_heads WHERE ns=%s AND tbl=%s FOR UPDATE",
                    (self.ns, table))
        chain_seq, record_hash = cur.fetchone()
        return chain_seq, record_hash

    def _insert_entry(self, cur: Any, table: str, key: str, chain_seq: int, payload: str, record_hash: str) -> None:
        cur.execute("INSERT INTO tl_journal_entries(ns, tbl, key, chain_seq, payload, record_hash, created_at) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s)",
                    (self.ns, table, key, chain_seq, payload, record_hash, time.time()))

    def _move_head(self, cur: Any, table: str, chain_seq: int, record_hash: str) -> None:
        cur.execute("UPDATE tl_chain_heads SET chain_seq=%s, record_hash=%s WHERE ns=%s AND tbl=%s",
                    (chain_seq, record_hash, self.ns, table))

    def _delete_open_marker(self, cur: Any, run_id: str) -> int:
        cur.execute("DELETE FROM tl_open_runs WHERE ns=%s AND run_id=%s", (self.ns, run_id))
        return int(cur.rowcount)

    def saved_tables(self) -> list[str]:
        rows = self._query("SELECT key FROM tl_journal_meta WHERE ns=%s AND key LIKE 'schema:%%' ORDER BY key",
                           (self.ns,))
        return [r[0][len("schema:"):] for r in rows]

    def tables_pending(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT tbl FROM tl_journal_entries WHERE ns=%s ORDER BY tbl",
                                          (self.ns,))]

    def _pending_rows(self, table: str | None, limit: int | None) -> list[tuple[Any, ...]]:
        sql = "SELECT seq, tbl, key, chain_seq, payload, created_at FROM tl_journal_entries WHERE ns=%s"
        args: list[Any] = [self.ns]
        if table is not None:
            sql += " AND tbl=%s"
            args.append(table)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._query(sql, args)

    def pending_stats(self) -> tuple[int, float | None]:
        count, oldest = self._query("SELECT COUNT(*), MIN(created_at) FROM tl_journal_entries WHERE ns=%s",
                                    (self.ns,))[0]
        return int(count), oldest

    def chain_head(self, table: AuditTable | str) -> tuple[int, str] | None:
        rows = self._query("SELECT chain_seq, record_hash FROM tl_chain_heads WHERE ns=%s AND tbl=%s AND chain_seq>=0",
                           (self.ns, table_name(table)))
        return (rows[0][0], rows[0][1]) if rows else None

    def drop_flushed(self, table: AuditTable | str, up_to_chain_seq: int) -> int:
        """Forget records that are safely in Delta (the chain head stays)."""
        with self._tx() as cur:
            cur.execute("DELETE FROM tl_journal_entries WHERE ns=%s AND tbl=%s AND chain_seq<=%s",
                        (self.ns, table_name(table), up_to_chain_seq))
            return cur.rowcount

    def meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM tl_journal_meta WHERE ns=%s AND key=%s", (self.ns, key))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as cur:
            cur.execute("INSERT INTO tl_journal_meta(ns, key, value) VALUES (%s,%s,%s) "
                        "ON CONFLICT (ns, key) DO UPDATE SET value=EXCLUDED.value", (self.ns, key, value))
