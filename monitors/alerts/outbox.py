"""The alert outbox: pages are recorded before they are sent, and sent until they arrive.

When an alert event that pages is recorded (``opened``, ``resolved``), one ``delivery_pending``
row per configured channel of its policy is written to ``audit.alerts`` **in the same journal
transaction**: a crash between recording the alert and delivering it loses nothing, the next
monitoring pass finds the entry and delivers it. Every later fact about an entry - identified by
(``delivery_of`` = the paging event's id, ``channel``) - is another row of the same table:

- ``delivered`` (attempt n): the channel accepted it; the entry is done, for good;
- ``delivery_failed`` (attempt n, the reason, ``next_attempt_at``): a real attempt failed; a null
  ``next_attempt_at`` means the outbox gave up (after ``give_up_after_s``) - ``tracelake alerts
  resend`` revives it;
- ``delivery_deferred`` (the reason, ``next_attempt_at``): not attempted this pass (its channel
  failed earlier in the pass, is not configured in this process, or the pass ran out of time);
- ``delivery_resend``: a person asked for it to be retried now.

Delivery is at least once and idempotent per entry: an entry with a ``delivered`` row is never
attempted again, and one process at a time delivers (a lock beside the journal), re-reading the
outbox once it holds the lock. Each attempt carries the entry's id (``Idempotency-Key`` header,
``Message-ID``) so a receiver can drop the one repeat at-least-once allows: an answer lost on
its way back after the channel had acted.
"""

from __future__ import annotations

import fcntl
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from tracelake.monitors.alerts.delivery import GRACE_S, attempt, run_parallel

__all__ = [
    "DELIVERY_EVENTS",
    "PAGING_EVENTS",
    "DeliveryReport",
    "DeliverySettings",
    "Outbox",
    "OutboxEntry",
    "entries_from_events",
    "render",
    "retry_delay",
]

PAGING_EVENTS = ("opened", "resolved")
DELIVERY_EVENTS = ("delivery_pending", "delivered", "delivery_failed", "delivery_deferred", "delivery_resend")


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


@dataclass
class OutboxEntry:
    """One (paging event, channel): what to send, and what happened so far."""

    delivery_of: str
    channel: str
    alert_id: str | None
    policy: str | None
    component: str | None
    enqueued_at: pd.Timestamp | None
    source: dict[str, Any] = field(default_factory=dict, repr=False)   # the paging event's row
    attempts: int = 0
    delivered: bool = False
    delivered_at: pd.Timestamp | None = None
    last_error: str | None = None
    last_attempt_at: pd.Timestamp | None = None
    note: str | None = None               # why it was last deferred
    next_attempt_at: pd.Timestamp | None = None
    gave_up: bool = False

    @property
    def key(self) -> str:
        return f"{self.delivery_of}-{self.channel}"

    @property
    def event(self) -> str:
        return str(self.source.get("event") or "opened")

    @property
    def state(self) -> str:
        if self.delivered:
            return "delivered"
        if self.gave_up:
            return "gave_up"
        return "retrying" if self.attempts else "pending"

    def due(self, now: datetime) -> bool:
        if self.delivered or self.gave_up:
            return False
        return self.next_attempt_at is None or self.next_attempt_at <= pd.Timestamp(now)

    def describe(self) -> str:
        if self.delivered:
            return "delivered" + (f" (attempt {self.attempts})" if self.attempts > 1 else "")
        tries = f"failed {self.attempts} time{'s' if self.attempts != 1 else ''}" if self.attempts else "not tried yet"
        if self.gave_up:
            return f"gave up, {tries}"
        when = f" at {self.next_attempt_at:%Y-%m-%d %H:%M:%S}" if self.next_attempt_at is not None else ""
        return f"pending retry{when}, {tries}" if self.attempts or self.note else f"pending{when}"

    def as_dict(self) -> dict[str, Any]:
        return {"delivery_id": self.key, "event": self.event, "channel": self.channel, "state": self.state,
                "attempts": self.attempts, "delivered_at": self.delivered_at, "last_error": self.last_error,
                "note": self.note, "next_attempt_at": self.next_attempt_at, "enqueued_at": self.enqueued_at,
                "summary": self.describe()}


def entries_from_events(events: pd.DataFrame) -> dict[str, OutboxEntry]:
    """Replay the outbox from ``audit.alerts`` (in record order); keyed by entry id."""
    out: dict[str, OutboxEntry] = {}
    if events.empty or "delivery_of" not in events.columns:
        return out
    records = events.to_dict("records")
    by_id = {r["event_id"]: r for r in records if r.get("event") in PAGING_EVENTS}
    for r in records:
        kind, of, channel = r.get("event"), _text(r.get("delivery_of")), _text(r.get("channel"))
        if kind not in DELIVERY_EVENTS or of is None or channel is None:
            continue
        key = f"{of}-{channel}"
        if kind == "delivery_pending":
            if key not in out:
                out[key] = OutboxEntry(of, channel, _text(r.get("alert_id")), _text(r.get("policy")),
                                       _text(r.get("component")), _ts(r.get("at")), dict(by_id.get(of) or {}),
                                       next_attempt_at=_ts(r.get("next_attempt_at")) or _ts(r.get("at")))
            continue
        entry = out.get(key)
        if entry is None or entry.delivered:
            continue
        attempt_no = int(r["attempt"]) if _num(r.get("attempt")) is not None else 0
        if kind == "delivered":
            entry.delivered, entry.delivered_at = True, _ts(r.get("at"))
            entry.attempts = max(entry.attempts, attempt_no)
            entry.next_attempt_at = None
        elif kind == "delivery_failed":
            entry.attempts = max(entry.attempts, attempt_no)
            entry.last_error, entry.last_attempt_at = _text(r.get("error")), _ts(r.get("at"))
            entry.next_attempt_at = _ts(r.get("next_attempt_at"))
            entry.gave_up = entry.next_attempt_at is None
        elif kind == "delivery_deferred":
            entry.note = _text(r.get("error"))
            entry.next_attempt_at = _ts(r.get("next_attempt_at"))
            entry.gave_up = entry.next_attempt_at is None
        elif kind == "delivery_resend":
            entry.gave_up, entry.next_attempt_at = False, _ts(r.get("at"))
    return out


def render(entry: OutboxEntry) -> tuple[str, str, dict[str, Any]]:
    """(subject, body, payload) of an entry, from the paging event it delivers."""
    s = entry.source
    policy, component = entry.policy or _text(s.get("policy")), entry.component or _text(s.get("component"))
    severity = _text(s.get("severity")) or "error"
    subject = (f"[RESOLVED] {policy} on {component}" if entry.event == "resolved"
               else f"[{severity.upper()}] {policy} on {component}")
    description, runbook = _text(s.get("description")) or "", _text(s.get("runbook_url"))
    body = f"{_text(s.get('message')) or ''}\n{description}\nRunbook: {runbook or '-'}"
    payload = {"alert_id": entry.alert_id, "event": entry.event, "policy": policy, "component": component,
               "severity": severity, "observed": _num(s.get("observed_value")),
               "threshold": _num(s.get("threshold_value")), "runbook": runbook, "description": description,
               "delivery_id": entry.key}
    return subject, body, payload


def retry_delay(attempts: int, base_s: float, cap_s: float) -> float:
    """Exponential in the attempts made so far, capped."""
    return float(min(cap_s, base_s * 2 ** max(0, attempts - 1)))


@dataclass
class DeliverySettings:
    attempts: int = 3                  # tries per entry within one pass (quick failures only)
    backoff_s: float = 0.5             # between those tries (doubling)
    timeout_s: float = 10.0            # total deadline of one try: connect + send + read
    phase_timeout_s: float = 30.0      # bound of a whole delivery pass (all channels, in parallel)
    retry_base_s: float = 300.0        # next pass' retry: base * 2^(attempts-1) ...
    retry_cap_s: float = 6 * 3600.0    # ... capped
    give_up_after_s: float = 7 * 86400.0
    max_workers: int = 4               # channels delivered at once


@dataclass
class DeliveryReport:
    due: int = 0
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)       # entry -> last reason
    deferred: dict[str, str] = field(default_factory=dict)     # entry -> why not attempted
    elapsed_s: float = 0.0
    busy: bool = False                                          # another process held the outbox

    @property
    def ok(self) -> bool:
        return not self.failed and not self.deferred and not self.busy


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextmanager
def _outbox_lock(path: Path, wait_s: float) -> Iterator[bool]:
    """One deliverer at a time, across threads and processes; yields whether it was acquired."""
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(str(path), threading.Lock())
    if not thread_lock.acquire(timeout=max(wait_s, 0.0)):
        yield False
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as fh:
            end = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= end:
                        yield False
                        return
                    time.sleep(0.05)
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        thread_lock.release()


Record = Callable[[Sequence[Mapping[str, Any]]], None]


def _gave_up(attempts: int, reason: str | None) -> str:
    return f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}: {reason}"[:500]


class Outbox:
    """Delivers due entries: channels in parallel, entries of one channel in order, every
    attempt under a total deadline, every outcome recorded as it happens."""

    def __init__(self, lock_path: Path, record: Record, settings: DeliverySettings):
        self.lock_path = lock_path
        self.record = record
        self.settings = settings

    def deliver(self, load: Callable[[], dict[str, OutboxEntry]], channels: Mapping[str, Any],
                select: Callable[[OutboxEntry], bool], now: datetime | None = None) -> DeliveryReport:
        st = self.settings
        start = time.monotonic()
        report = DeliveryReport()
        bound = st.phase_timeout_s + GRACE_S
        with _outbox_lock(self.lock_path, bound) as acquired:
            if not acquired:
                report.busy = True
                report.elapsed_s = time.monotonic() - start
                return report
            # Read the outbox only once it is ours: whatever another deliverer did is in it.
            todo = [e for e in load().values() if not e.delivered and select(e)]
            report.due = len(todo)
            if todo:
                self._run(todo, channels, report, start + st.phase_timeout_s, now)
        report.elapsed_s = time.monotonic() - start
        return report

    # -- one pass --------------------------------------------------------------------------
    def _run(self, todo: list[OutboxEntry], channels: Mapping[str, Any], report: DeliveryReport,
             phase_end: float, now: datetime | None) -> None:
        by_channel: dict[str, list[OutboxEntry]] = {}
        for entry in sorted(todo, key=lambda e: (e.enqueued_at or pd.Timestamp.min.tz_localize("UTC"), e.key)):
            by_channel.setdefault(entry.channel, []).append(entry)
        lock = threading.Lock()
        tasks = {name: (lambda n=name, items=items: self._channel(n, items, channels.get(n), report, lock,
                                                                   phase_end, now))
                 for name, items in by_channel.items()}
        finished = run_parallel(tasks, max_workers=self.settings.max_workers,
                                bound_s=max(0.0, phase_end - time.monotonic()) + GRACE_S * 2)
        with lock:
            for name, done in finished.items():
                if not done:
                    for entry in by_channel[name]:
                        if entry.key not in report.delivered and entry.key not in report.failed:
                            report.deferred.setdefault(entry.key, "delivery pass ran out of time")

    def _now(self, now: datetime | None) -> datetime:
        return now or datetime.now(UTC)

    def _row(self, entry: OutboxEntry, event: str, **fields: Any) -> dict[str, Any]:
        return {"alert_id": entry.alert_id, "policy": entry.policy, "component": entry.component, "event": event,
                "channel": entry.channel, "delivery_of": entry.delivery_of, **fields}

    def _next(self, entry: OutboxEntry, attempts: int, now: datetime) -> datetime | None:
        """When to try again after this pass, or None: give up (the entry is too old)."""
        st = self.settings
        age = (pd.Timestamp(now) - entry.enqueued_at).total_seconds() if entry.enqueued_at is not None else 0.0
        if age > st.give_up_after_s:
            return None
        return now + timedelta(seconds=retry_delay(max(attempts, 1), st.retry_base_s, st.retry_cap_s))

    def _defer(self, entry: OutboxEntry, reason: str, report: DeliveryReport, lock: threading.Lock,
               now: datetime | None) -> None:
        at = self._now(now)
        nxt = self._next(entry, entry.attempts, at)
        self.record([self._row(entry, "delivery_deferred", attempt=entry.attempts, at=at, next_attempt_at=nxt,
                               error=reason if nxt else _gave_up(entry.attempts, reason))])
        with lock:
            report.deferred[entry.key] = reason

    def _channel(self, name: str, items: list[OutboxEntry], channel: Any, report: DeliveryReport,
                 lock: threading.Lock, phase_end: float, now: datetime | None) -> None:
        st = self.settings
        broken: str | None = None
        secrets = list(channel.secrets()) if channel is not None and hasattr(channel, "secrets") else []
        for entry in items:
            left = phase_end - time.monotonic()
            if left <= 0:
                self._defer(entry, f"delivery pass ran out of time ({st.phase_timeout_s:g} s)", report, lock, now)
                continue
            if channel is None:
                self._defer(entry, f"channel {name!r} is not configured in this process", report, lock, now)
                continue
            if broken is not None:
                self._defer(entry, f"not tried: {name} failed earlier in this pass ({broken})"[:500], report, lock, now)
                continue
            subject, body, payload = render(entry)
            for i in range(1, max(1, st.attempts) + 1):
                left = phase_end - time.monotonic()
                outcome = attempt(channel, subject, body, payload, max(0.5, min(st.timeout_s, left)), secrets)
                entry.attempts += 1
                at = self._now(now)
                if outcome.delivered:
                    self.record([self._row(entry, "delivered", attempt=entry.attempts, at=at)])
                    with lock:
                        report.delivered.append(entry.key)
                    break
                pause = st.backoff_s * 2 ** (i - 1)
                final = (i >= st.attempts or outcome.kind in ("deadline", "config")
                         or time.monotonic() + pause >= phase_end)
                nxt = self._next(entry, entry.attempts, at) if final else at + timedelta(seconds=pause)
                error = outcome.error if nxt is not None else _gave_up(entry.attempts, outcome.error)
                self.record([self._row(entry, "delivery_failed", attempt=entry.attempts, at=at, error=error,
                                       next_attempt_at=nxt)])
                if final:
                    with lock:
                        report.failed[entry.key] = error or "failed"
                    if outcome.kind != "config":
                        broken = outcome.error
                    break
                time.sleep(pause)
