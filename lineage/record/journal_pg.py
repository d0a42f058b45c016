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
several lakehouses (a test suite's, a team's) without mixing their chains. The interface is the
SQLite journal's, so the audit store, recorder and reconciliation do not know which they have.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tracelake.lineage.record.audit_tables import COMPONENT_RUNS, AuditTable
from tracelake.lineage.record.chain import chain_hash, decode_payload, encode_payload, normalize_row
from tracelake.lineage.record.journal import JournalEntry, OpenRun, RunAlreadyFinished

__all__ = ["PgJournal", "redact_url"]

log = logging.getLogger("tracelake.journal")

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


def _tbl(table: AuditTable | str) -> str:
    return table.name if isinstance(table, AuditTable) else table


class PgJournal:
    """The journal's interface (see ``journal.Journal``) on PostgreSQL, safe for many threads,
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
    def flush_lock(self) -> Iterator[None]:
        """One flusher per namespace across every machine: a session advisory lock, held on a
        connection of its own for as long as the flush runs."""
        import psycopg2

        con = psycopg2.connect(self.url, application_name="tracelake-flush", connect_timeout=30)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"tracelake-flush:{self.ns}",))
            yield
        finally:
            con.close()  # ends the session, which releases the lock even if unlock was never sent

    @contextmanager
    def table_lock(self, table_path: str) -> Iterator[None]:
        """One Spark commit at a time to a table, across every driver that records into this
        journal. Delta's LogStore for s3a:// (S3SingleDriverLogStore) excludes concurrent commits
        only inside one JVM; two drivers committing the same version can silently lose one.
        delta-rs writers need no such lock (they use conditional puts)."""
        import psycopg2

        con = psycopg2.connect(self.url, application_name="tracelake-commit", connect_timeout=30)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"tracelake-commit:{table_path.rstrip('/')}",))
            yield
        finally:
            con.close()  # ends the session, which releases the lock

    # -- open markers ----------------------------------------------------------------------
    def open_run(self, run_id: str, row: Mapping[str, Any]) -> None:
        """Durably note that a run started (before any of its work happens)."""
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO tl_open_runs(ns, run_id, payload, host, pid, started_at) VALUES (%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (ns, run_id) DO UPDATE SET payload=EXCLUDED.payload, host=EXCLUDED.host, "
                "pid=EXCLUDED.pid, started_at=EXCLUDED.started_at",
                (self.ns, run_id, encode_payload(row), socket.gethostname(), os.getpid(), time.time()))

    def open_runs(self) -> list[OpenRun]:
        rows = self._query("SELECT run_id, payload, host, pid, started_at FROM tl_open_runs WHERE ns=%s "
                           "ORDER BY run_id", (self.ns,))
        schema = COMPONENT_RUNS.schema
        return [OpenRun(r[0], decode_payload(r[1], schema), r[2], r[3], r[4]) for r in rows]

    # -- final records ---------------------------------------------------------------------
    def append(self, table: AuditTable, key: str, row: Mapping[str, Any], *,
               close_run: str | None = None) -> dict[str, Any]:
        """Chain and store one final record (see ``Journal.append``)."""
        return self.append_many(table, [(key, row)], close_run=close_run)[0]

    def append_many(self, table: AuditTable, items: Sequence[tuple[str, Mapping[str, Any]]], *,
                    close_run: str | None = None) -> list[dict[str, Any]]:
        """Chain several records of one table in one transaction; durable when it returns."""
        schema = table.schema
        self._remember_schema(table)
        name = table.name
        out: list[dict[str, Any]] = []
        with self._tx() as cur:
            # The head row is the chain's lock: writers of one table on any machine queue here.
            cur.execute("INSERT INTO tl_chain_heads(ns, tbl, chain_seq, record_hash) VALUES (%s,%s,-1,NULL) "
                        "ON CONFLICT DO NOTHING", (self.ns, name))
            cur.execute("SELECT chain_seq, record_hash FROM tl_chain_heads WHERE ns=%s AND tbl=%s FOR UPDATE",
                        (self.ns, name))
            chain_seq, prev = cur.fetchone()
            chain_seq += 1
            now = datetime.now(UTC)
            for key, row in items:
                record = dict(row)
                record.update(journal_id=self.journal_id, chain_seq=chain_seq, prev_hash=prev,
                              record_hash=None, recorded_at=now)
                normalized = normalize_row(record, schema)
                normalized["record_hash"] = chain_hash(prev, normalized)
                cur.execute("INSERT INTO tl_journal_entries(ns, tbl, key, chain_seq, payload, record_hash, created_at) "
                            "VALUES (%s,%s,%s,%s,%s,%s,%s)",
                            (self.ns, name, key, chain_seq, encode_payload(normalized), normalized["record_hash"],
                             time.time()))
                out.append(normalized)
                prev, chain_seq = normalized["record_hash"], chain_seq + 1
            if out:
                cur.execute("UPDATE tl_chain_heads SET chain_seq=%s, record_hash=%s WHERE ns=%s AND tbl=%s",
                            (chain_seq - 1, prev, self.ns, name))
            if close_run is not None:
                cur.execute("DELETE FROM tl_open_runs WHERE ns=%s AND run_id=%s", (self.ns, close_run))
                if cur.rowcount != 1:
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
        """Keep each table's schema beside its records (see ``Journal._remember_schema``)."""
        encoded = base64.b64encode(table.schema.serialize().to_pybytes()).decode()
        if self._schemas_saved.get(table.name) == encoded:
            return
        if self.meta(f"schema:{table.name}") != encoded:
            self.set_meta(f"schema:{table.name}", encoded)
        self._schemas_saved[table.name] = encoded

    def saved_schema(self, table: str) -> Any:
        import pyarrow as pa

        raw = self.meta(f"schema:{table}")
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(raw))) if raw else None

    def saved_tables(self) -> list[str]:
        rows = self._query("SELECT key FROM tl_journal_meta WHERE ns=%s AND key LIKE 'schema:%%' ORDER BY key",
                           (self.ns,))
        return [r[0][len("schema:"):] for r in rows]

    def tables_pending(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT tbl FROM tl_journal_entries WHERE ns=%s ORDER BY tbl",
                                          (self.ns,))]

    def pending(self, table: AuditTable | str | None = None, limit: int | None = None) -> list[JournalEntry]:
        sql = "SELECT seq, tbl, key, chain_seq, payload, created_at FROM tl_journal_entries WHERE ns=%s"
        args: list[Any] = [self.ns]
        if table is not None:
            sql += " AND tbl=%s"
            args.append(_tbl(table))
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._query(sql, args)
        schemas = {name: self.saved_schema(name) for name in {r[1] for r in rows}}
        return [JournalEntry(r[0], r[1], r[2], r[3], decode_payload(r[4], schemas[r[1]]), r[5]) for r in rows]

    def pending_stats(self) -> tuple[int, float | None]:
        count, oldest = self._query("SELECT COUNT(*), MIN(created_at) FROM tl_journal_entries WHERE ns=%s",
                                    (self.ns,))[0]
        return int(count), oldest

    def chain_head(self, table: AuditTable | str) -> tuple[int, str] | None:
        rows = self._query("SELECT chain_seq, record_hash FROM tl_chain_heads WHERE ns=%s AND tbl=%s AND chain_seq>=0",
                           (self.ns, _tbl(table)))
        return (rows[0][0], rows[0][1]) if rows else None

    def drop_flushed(self, table: AuditTable | str, up_to_chain_seq: int) -> int:
        """Forget records that are safely in Delta (the chain head stays)."""
        with self._tx() as cur:
            cur.execute("DELETE FROM tl_journal_entries WHERE ns=%s AND tbl=%s AND chain_seq<=%s",
                        (self.ns, _tbl(table), up_to_chain_seq))
            return cur.rowcount

    def meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM tl_journal_meta WHERE ns=%s AND key=%s", (self.ns, key))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as cur:
            cur.execute("INSERT INTO tl_journal_meta(ns, key, value) VALUES (%s,%s,%s) "
                        "ON CONFLICT (ns, key) DO UPDATE SET value=EXCLUDED.value", (self.ns, key, value))

    def describe(self) -> dict[str, Any]:
        count, oldest = self.pending_stats()
        return {
            "path": self.path,
            "journal_id": self.journal_id,
            "pending_records": count,
            "oldest_pending_age_s": None if oldest is None else round(time.time() - oldest, 1),
            "open_runs": len(self.open_runs()),
        }
