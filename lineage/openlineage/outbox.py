"""The outbox: events that were not delivered, kept durably until ``tracelake openlineage resend``.

A small SQLite file beside the default events (``<openlineage_dir>/outbox.sqlite``). It holds a
*reference* per undelivered event - the Tracelake run and which of its two events (``start`` or
``end``) - with why and how often delivery failed, not the event body: events are pure functions
of the audit records (see ``events``), so a resend rebuilds exactly the event that failed, from
the record that is the source of truth anyway. Counters of delivered and failed events make
``tracelake openlineage status`` answer for every process that published into this lakehouse.

It is not a chained audit table on purpose: its rows change (attempts) and disappear (delivered),
and what it says is about a backend's availability, not about what ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tracelake.lineage.openlineage.sqlite_file import SqliteFile
from tracelake.lineage.record.redact import scrub_text

__all__ = ["Outbox", "Undelivered"]

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
        reason = scrub_text(reason) or ""
        now = time.time()
        with self._con() as con:
            con.execute(
                "INSERT INTO undelivered(run_id, kind, event_type, openlineage_run_id, reason, attempts, "
                "first_failed_at, last_failed_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(run_id, kind) DO UPDATE SET"
                " reason=excluded.reason, attempts=attempts + excluded.attempts,"
                " last_failed_at=excluded.last_failed_at,"
                " event_type=COALESCE(excluded.event_type, event_type),"
                " openlineage_run_id=COALESCE(excluded.openlineage_run_id, openlineage_run_id)",
                (run_id, kind, event_type, openlineage_run_id, reason[:2000], attempts, now, now))
            con.execute("INSERT INTO counters(name, value, updated_at) VALUES ('failed', 1, ?) ON CONFLICT(name) DO "
                        "UPDATE SET value=value + 1, updated_at=excluded.updated_at", (now,))
            con.execute("INSERT INTO notes(name, value, updated_at) VALUES ('last_error', ?, ?) ON CONFLICT(name) DO "
                        "UPDATE SET value=excluded.value, updated_at=excluded.updated_at", (reason[:2000], now))

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
