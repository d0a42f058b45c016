"""The outbox: events that were not delivered, kept durably until ``tracelake openlineage resend``.

A small SQLite file beside the default events (``<openlineage_dir>/outbox.sqlite``). It holds a
*reference* per undelivered event - the Tracelake run and which of its two events (``start`` or
``end``) - with why and how often delivery failed, not the event body: events are pure functions
of the audit records (see ``events``), so a resend rebuilds exactly the event that failed, from
the record that is the source of truth anyway. Counters of delivered and failed events make
``tracelake openlineage status`` answer for every process that published into this lakehouse,
and a note of when delivery last failed puts every new process into the publisher's back-off.

It is not a chained audit table on purpose: its rows change (attempts) and disappear (delivered),
and what it says is about a backend's availability, not about what ran.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from tracelake.lineage.openlineage.sqlite_file import SqliteFile
from tracelake.lineage.record.redact import scrub_text

__all__ = ["BACKEND_FAILED", "TERMINAL_EVENT_TYPES", "Entry", "Outbox", "Undelivered", "event_type_of"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS undelivered (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    event_type TEXT,
    openlineage_run_id TEXT,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_failed_at REAL NOT NULL,
    last_failed_at REAL NOT NULL,
    UNIQUE (run_id, kind)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS notes (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL);
"""


BACKEND_FAILED = "backend_failed"   # note: when delivery last failed (updated_at), with the error

# The terminal event of each final status. Plain names, so an entry says its event type without
# the event being built (building loads the client library); ``events`` takes its states from here.
TERMINAL_EVENT_TYPES = {"succeeded": "COMPLETE", "skipped": "COMPLETE", "failed": "FAIL", "abandoned": "ABORT"}


def event_type_of(kind: str, status: str | None) -> str | None:
    """START for a run's ``start`` entry; the terminal type of its status for ``end``."""
    return "START" if kind == "start" else TERMINAL_EVENT_TYPES.get(status or "")


def _clean(text: str, scrubbed: bool) -> str:
    return (text if scrubbed else scrub_text(text) or "")[:2000]


@dataclass(frozen=True)
class Entry:
    """An event to remember as undelivered (see :meth:`Outbox.add`)."""

    run_id: str
    kind: str
    reason: str
    event_type: str | None = None
    openlineage_run_id: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class Undelivered:
    id: int
    run_id: str
    kind: str                 # "start" | "end"
    event_type: str | None    # START / COMPLETE / FAIL / ABORT when it was known
    openlineage_run_id: str | None
    reason: str
    attempts: int
    first_failed_at: float
    last_failed_at: float


class Outbox(SqliteFile):
    def __init__(self, directory: str | Path):
        super().__init__(directory, "outbox.sqlite", _SCHEMA, synchronous="NORMAL")

    def add(self, run_id: str, kind: str, reason: str, *, event_type: str | None = None,
            openlineage_run_id: str | None = None, attempts: int = 1) -> None:
        """Remember an undelivered event (again: the attempts add up, the newest reason wins). The
        reason is a transport error: scrubbed, since error texts can carry URLs with credentials."""
        self.add_many([Entry(run_id, kind, reason, event_type, openlineage_run_id, attempts)])

    def add_many(self, entries: list[Entry], *, scrubbed: bool = False) -> None:
        """:meth:`add` for several events in one transaction (what a process leaves at exit).
        ``scrubbed``: the reasons are made of text scrubbed already - the first scrub of a process
        loads the secret scanner (a third of a second), which must not land on a process's exit."""
        if not entries:
            return
        now = time.time()
        rows = [(e.run_id, e.kind, e.event_type, e.openlineage_run_id, _clean(e.reason, scrubbed), e.attempts, now, now)
                for e in entries]
        with self._con() as con:
            con.execute("BEGIN IMMEDIATE")
            con.executemany(
                "INSERT INTO undelivered(run_id, kind, event_type, openlineage_run_id, reason, attempts, "
                "first_failed_at, last_failed_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(run_id, kind) DO UPDATE SET"
                " reason=excluded.reason, attempts=attempts + excluded.attempts,"
                " last_failed_at=excluded.last_failed_at,"
                " event_type=COALESCE(excluded.event_type, event_type),"
                " openlineage_run_id=COALESCE(excluded.openlineage_run_id, openlineage_run_id)", rows)
            con.execute("INSERT INTO counters(name, value, updated_at) VALUES ('failed', ?, ?) ON CONFLICT(name) DO "
                        "UPDATE SET value=value + excluded.value, updated_at=excluded.updated_at", (len(rows), now))
            self._note(con, "last_error", rows[-1][4], now)
            con.execute("COMMIT")

    @staticmethod
    def _note(con: sqlite3.Connection, name: str, value: str, at: float) -> None:
        con.execute("INSERT INTO notes(name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO "
                    "UPDATE SET value=excluded.value, updated_at=excluded.updated_at", (name, value, at))

    # -- the backend's health, shared by every process publishing from this lakehouse -----------
    def backend_failed(self, error: str, *, scrubbed: bool = False) -> None:
        """Remember that delivery failed now: a process starting within the back-off sends
        nothing to the backend (each step process of a Dagster run would pay the failure again)."""
        with self._con() as con:
            self._note(con, BACKEND_FAILED, _clean(error, scrubbed), time.time())

    def backend_failure(self) -> tuple[str, float] | None:
        """(error, wall-clock time) of the last recorded delivery failure, if one is recorded."""
        return self.notes().get(BACKEND_FAILED)

    def backend_recovered(self) -> None:
        """Delivery works again (a resend went through): no process needs to back off."""
        if self.path.exists():
            with self._con() as con:
                con.execute("DELETE FROM notes WHERE name=?", (BACKEND_FAILED,))

    def pending(self) -> list[Undelivered]:
        """Undelivered events, oldest first (a run's START before its end)."""
        if not self.path.exists():
            return []
        with self._con() as con:
            rows = con.execute("SELECT id, run_id, kind, event_type, openlineage_run_id, reason, attempts, "
                               "first_failed_at, last_failed_at FROM undelivered "
                               "ORDER BY run_id, CASE kind WHEN 'start' THEN 0 ELSE 1 END, id").fetchall()
        return [Undelivered(*r) for r in rows]

    def delivered(self, item: Undelivered) -> None:
        with self._con() as con:
            con.execute("DELETE FROM undelivered WHERE id=?", (item.id,))

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a counter (``delivered``, ``resent``, ...)."""
        with self._con() as con:
            con.execute("INSERT INTO counters(name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO "
                        "UPDATE SET value=value + excluded.value, updated_at=excluded.updated_at",
                        (name, n, time.time()))

    def counters(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        with self._con() as con:
            return dict(con.execute("SELECT name, value FROM counters").fetchall())

    def notes(self) -> dict[str, tuple[str, float]]:
        if not self.path.exists():
            return {}
        with self._con() as con:
            return {name: (value, at) for name, value, at in con.execute("SELECT name, value, updated_at FROM notes")}
