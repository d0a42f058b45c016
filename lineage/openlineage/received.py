"""Events received from other producers, stored before they are answered.

``<openlineage_dir>/received.sqlite`` keeps every event exactly as it arrived (the raw JSON), so
a ``201`` means the event is on disk, a retried POST is stored once (clients retry 5xx; the key is
run id, event type, event time and job), and an event can always be looked at again. Which
OpenLineage runs have been turned into external run records is noted beside them, so the
endpoint, a restart and ``tracelake openlineage import`` never record a run twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from tracelake.lineage.openlineage.ids import is_uuid
from tracelake.lineage.openlineage.sqlite_file import SqliteFile

__all__ = ["TERMINAL", "InvalidEvent", "ReceivedStore", "Stored", "validate_event"]

TERMINAL = ("COMPLETE", "FAIL", "ABORT")
_TYPES = ("START", "RUNNING", *TERMINAL, "OTHER")
MAX_ATTEMPTS = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    event_type TEXT,
    event_time TEXT NOT NULL,
    job_namespace TEXT,
    job_name TEXT,
    parent_run_id TEXT,
    payload TEXT NOT NULL,
    source TEXT,
    received_at REAL NOT NULL,
    UNIQUE (run_id, event_type, event_time, job_namespace, job_name)
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    records TEXT,
    detail TEXT,
    attempts INTEGER NOT NULL,
    processed_at REAL NOT NULL
);
"""


class InvalidEvent(ValueError):
    """Not an OpenLineage event we can store (the message says what is wrong, in one line)."""


def validate_event(event: Any) -> None:
    """The minimum every stored event must have: an ISO ``eventTime`` with a time, and for run
    events a UUID ``run.runId``, a known ``eventType`` and ``job.namespace``/``job.name``."""
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"an event must be a JSON object, not {type(event).__name__}")
    when = event.get("eventTime")
    if not isinstance(when, str) or "t" not in when.lower():
        raise InvalidEvent(f"eventTime {when!r} is not an ISO-8601 date-time")
    try:
        _parse_time(when)
    except ValueError:
        raise InvalidEvent(f"eventTime {when!r} is not an ISO-8601 date-time") from None
    if "run" not in event:
        return  # a DatasetEvent or JobEvent: stored, nothing to record
    run, job = event.get("run"), event.get("job")
    if not isinstance(run, Mapping) or not is_uuid(str(run.get("runId", ""))):
        raise InvalidEvent(f"run.runId {run.get('runId') if isinstance(run, Mapping) else run!r} is not a UUID")
    if not isinstance(job, Mapping) or not job.get("namespace") or not job.get("name"):
        raise InvalidEvent("a run event needs job.namespace and job.name")
    kind = event.get("eventType") or "OTHER"
    if kind not in _TYPES:
        raise InvalidEvent(f"eventType {kind!r} is not one of {', '.join(_TYPES)}")


def _parse_time(text: str) -> float:
    from datetime import datetime

    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def event_seconds(event: Mapping[str, Any]) -> float:
    return _parse_time(event["eventTime"])


@dataclass
class Stored:
    stored: int = 0
    duplicates: int = 0
    ready: list[str] = field(default_factory=list)    # run ids with a terminal event, new here


class ReceivedStore(SqliteFile):
    def __init__(self, directory: str | Path):
        # FULL: stored means on disk before we answer
        super().__init__(directory, "received.sqlite", _SCHEMA, synchronous="FULL")

    def add(self, events: Sequence[Mapping[str, Any]], source: str) -> Stored:
        """Store validated events in one transaction; returns what was new."""
        out = Stored()
        now = time.time()
        with self._con() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                for event in events:
                    run = event.get("run") or {}
                    job = event.get("job") or {}
                    parent = ((run.get("facets") or {}).get("parent") or {}).get("run", {}).get("runId")
                    kind = event.get("eventType") or ("OTHER" if run else None)
                    cur = con.execute(
                        "INSERT OR IGNORE INTO events(run_id, event_type, event_time, job_namespace, job_name, "
                        "parent_run_id, payload, source, received_at) VALUES (?,?,?,?,?,?,?,?,?)",
                        (run.get("runId"), kind, event["eventTime"], job.get("namespace"), job.get("name"), parent,
                         json.dumps(event, sort_keys=True), source, now))
                    if cur.rowcount:
                        out.stored += 1
                        if kind in TERMINAL:
                            out.ready.append(run["runId"])
                    else:
                        out.duplicates += 1
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return out

    def events_of(self, run_id: str) -> list[dict[str, Any]]:
        with self._con() as con:
            rows = con.execute("SELECT payload FROM events WHERE run_id=? ORDER BY event_time, id",
                               (run_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def unprocessed(self) -> list[str]:
        """Runs with a terminal event that are not recorded yet (or failed fewer than 3 times)."""
        if not self.path.exists():
            return []
        with self._con() as con:
            rows = con.execute(
                "SELECT DISTINCT e.run_id FROM events e LEFT JOIN runs r ON r.run_id = e.run_id "
                f"WHERE e.event_type IN {TERMINAL!r} AND (r.run_id IS NULL OR (r.state = 'error' AND r.attempts < ?)) "
                "ORDER BY e.run_id", (MAX_ATTEMPTS,)).fetchall()
        return [r[0] for r in rows]

    def mark(self, run_id: str, state: str, records: Sequence[str], detail: str) -> None:
        """``state``: recorded | ignored (nothing to record) | error (tried again later)."""
        with self._con() as con:
            con.execute(
                "INSERT INTO runs(run_id, state, records, detail, attempts, processed_at) VALUES (?,?,?,?,1,?) "
                "ON CONFLICT(run_id) DO UPDATE SET state=excluded.state, records=excluded.records, "
                "detail=excluded.detail, attempts=attempts + 1, processed_at=excluded.processed_at",
                (run_id, state, json.dumps(list(records)), detail[:4000], time.time()))

    def summary(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"events": 0, "runs": {}}
        with self._con() as con:
            events = con.execute("SELECT count(*) FROM events").fetchone()[0]
            states = dict(con.execute("SELECT state, count(*) FROM runs GROUP BY state").fetchall())
            errors = [{"run_id": r, "detail": d} for r, d in
                      con.execute("SELECT run_id, detail FROM runs WHERE state='error' "
                                  "ORDER BY processed_at DESC LIMIT 5")]
        return {"events": events, "runs": states, "recent_errors": errors, "waiting": len(self.unprocessed())}
