"""Alerts people act on: policies, deduplication, resolution, acknowledgement, delivery.

One open alert per (policy, component): a breach that persists adds to that alert's count
instead of paging again; when the condition clears the alert resolves (and says so on its
channels); a person acknowledges or resolves it from the CLI. Every state change, and every
delivery attempt, is an event in ``audit.alerts`` (chained like every audit record), so the
history of an alert can be replayed and audited.

Pages go through an outbox (:mod:`tracelake.monitors.alerts.outbox`): the paging event and one
pending delivery per channel are recorded in one transaction, then delivered under a deadline;
what could not be delivered is retried by later passes - a page is never lost.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from tracelake.lineage import Lakehouse
from tracelake.lineage.record.redact import redact_record
from tracelake.lineage.record.runid import new_run_id
from tracelake.monitors.alerts.outbox import DeliveryReport, DeliverySettings, Outbox, OutboxEntry, entries_from_events
from tracelake.monitors.audit_tables import ALERTS

__all__ = ["ALERTS", "AlertManager", "AlertPolicy", "AlertState", "DeliveryReport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertPolicy:
    """What opens an alert: ``for_evaluations`` consecutive breaches of its condition."""

    name: str
    severity: str = "error"
    for_evaluations: int = 1
    channels: tuple[str, ...] = ("webhook", "email")
    description: str = ""
    runbook_url: Any = None   # a URL, or a Runbook resolved when the alert is raised

    @property
    def runbook(self) -> str | None:
        return None if self.runbook_url is None else str(self.runbook_url)


@dataclass
class AlertState:
    alert_id: str
    policy: str
    component: str
    severity: str
    status: str
    message: str
    occurrences: int
    first_seen: Any
    last_seen: Any
    runbook_url: str | None
    description: str | None
    deliveries: list[dict[str, Any]] = field(default_factory=list)   # every attempt, in order
    outbox: list[OutboxEntry] = field(default_factory=list)          # per (paging event, channel)

    def delivery_summary(self) -> str:
        """Per channel, the state of this alert's pages: ``webhook: delivered; email: pending retry ...``."""
        by_channel: dict[str, list[OutboxEntry]] = {}
        for entry in self.outbox:
            by_channel.setdefault(entry.channel, []).append(entry)
        parts = []
        for channel, entries in by_channel.items():
            open_ = [e for e in entries if not e.delivered]
            parts.append(f"{channel}: " + ("delivered" if not open_ else open_[0].describe()))
        return "; ".join(parts) or "-"


class AlertManager:
    """Alert lifecycle and delivery.

    Delivery settings: ``attempts`` tries per page and channel within one pass (quick failures
    only, ``backoff_s`` apart), each under a total deadline of ``timeout_s``; a whole delivery
    pass is bounded by ``phase_timeout_s``; a page still undelivered is retried on later passes
    after ``retry_base_s * 2^(attempts-1)`` (at most ``retry_cap_s``), until delivered or
    ``give_up_after_s`` old. See :mod:`tracelake.monitors.alerts.outbox`.
    """

    def __init__(self, lake: Lakehouse, channels: Mapping[str, Any] | None = None, attempts: int = 3,
                 backoff_s: float = 0.5, *, timeout_s: float = 10.0, phase_timeout_s: float = 30.0,
                 retry_base_s: float = 300.0, retry_cap_s: float = 6 * 3600.0,
                 give_up_after_s: float = 7 * 86400.0, max_workers: int = 4):
        self.lake = lake
        self.channels = dict(channels or {})
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.settings = DeliverySettings(attempts=attempts, backoff_s=backoff_s, timeout_s=timeout_s,
                                         phase_timeout_s=phase_timeout_s, retry_base_s=retry_base_s,
                                         retry_cap_s=retry_cap_s, give_up_after_s=give_up_after_s,
                                         max_workers=max_workers)
        self.outbox = Outbox(lake.journal.directory / "alerts-outbox.lock", self._record, self.settings)
        self._deferring = False
        self._queued: list[str] = []
        self.reports: list[DeliveryReport] = []

    # -- reading -----------------------------------------------------------------------------
    def events(self) -> pd.DataFrame:
        return self.lake.store.read(ALERTS)

    def alerts(self, status: str | None = None) -> list[AlertState]:
        events = self.events()
        if events.empty:
            return []
        states: dict[str, AlertState] = {}
        for e in events[events["alert_id"].notna()].to_dict("records"):
            s = states.get(e["alert_id"])
            if e["event"] == "opened":
                states[e["alert_id"]] = AlertState(e["alert_id"], e["policy"], e["component"], e["severity"], "open",
                                                   e["message"], int(e["occurrences"] or 1), e["first_seen"],
                                                   e["last_seen"], e["runbook_url"], e["description"])
            elif s is None:
                continue
            elif e["event"] in ("repeated", "acknowledged", "resolved"):
                s.status = e["status"]
                s.occurrences = int(e["occurrences"] or s.occurrences)
                s.last_seen = e["last_seen"] if e["last_seen"] is not None else s.last_seen
                if e["event"] == "repeated":
                    s.message = e["message"]
            elif e["event"] in ("delivered", "delivery_failed"):
                s.deliveries.append({"channel": e["channel"], "attempt": e["attempt"],
                                     "delivered": e["event"] == "delivered", "error": e["error"], "at": e["at"],
                                     "delivery_of": e.get("delivery_of"), "next_attempt_at": e.get("next_attempt_at")})
        for entry in entries_from_events(events).values():
            if entry.alert_id in states:
                states[entry.alert_id].outbox.append(entry)
        out = list(states.values())
        return [a for a in out if status is None or a.status == status]

    def pending_deliveries(self) -> list[OutboxEntry]:
        """Every page not delivered yet (pending, retrying, or given up)."""
        return [e for e in entries_from_events(self.events()).values() if not e.delivered]

    def active(self, policy: str, component: str) -> AlertState | None:
        for a in self.alerts():
            if a.policy == policy and a.component == component and a.status in ("open", "acknowledged"):
                return a
        return None

    def _streak(self, policy: str, component: str) -> int:
        events = self.events()
        if events.empty:
            return 0
        mine = events[(events["policy"] == policy) & (events["component"] == component)
                      & events["event"].isin(["breach", "clear", "opened", "resolved"])]
        if mine.empty:
            return 0
        last = mine.iloc[-1]
        return int(last["occurrences"] or 0) if last["event"] == "breach" else 0

    # -- writing -----------------------------------------------------------------------------
    def _event(self, **fields: Any) -> dict[str, Any]:
        row = redact_record({"event_id": new_run_id(), "at": datetime.now(UTC), **fields})  # secrets out
        return self.lake.journal.append(ALERTS, row["event_id"], row)

    def _record(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Several events in one journal transaction (all durable, or none)."""
        now = datetime.now(UTC)
        items = []
        for fields in rows:
            row = redact_record({"event_id": new_run_id(), "at": now, **fields})  # secrets out
            items.append((row["event_id"], row))
        return self.lake.journal.append_many(ALERTS, items)

    def _page(self, policy: AlertPolicy, /, **fields: Any) -> None:
        """Record a paging event and its outbox entries (one per configured channel of the policy)
        in one transaction, then deliver them - now, or at the end of a deferred block."""
        event_id = new_run_id()
        at = datetime.now(UTC)
        rows: list[dict[str, Any]] = [{"event_id": event_id, "at": at, **fields}]
        names = [n for n in dict.fromkeys(policy.channels) if n in self.channels]
        for name in names:
            rows.append({"event_id": new_run_id(), "at": at, "event": "delivery_pending",
                         "alert_id": fields["alert_id"], "policy": policy.name, "component": fields.get("component"),
                         "channel": name, "delivery_of": event_id, "attempt": 0, "next_attempt_at": at})
        rows = [redact_record(r) for r in rows]  # secrets out before the journal (and the channels)
        self.lake.journal.append_many(ALERTS, [(r["event_id"], r) for r in rows])
        keys = [f"{event_id}-{n}" for n in names]
        if not keys:
            return
        if self._deferring:
            self._queued.extend(keys)
        else:
            self.deliver_pending(keys=keys)

    @contextmanager
    def deferred_delivery(self) -> Iterator[None]:
        """Within the block pages are recorded (with their outbox entries) but not sent; on leaving
        it - also by an exception - they are delivered together, channels in parallel."""
        if self._deferring:
            yield
            return
        self._deferring, self._queued = True, []
        try:
            yield
        finally:
            self._deferring = False
            keys, self._queued = self._queued, []
            if keys:
                self.deliver_pending(keys=keys)

    def deliver_pending(self, *, keys: Sequence[str] | None = None, alert_id: str | None = None,
                        force: bool = False, now: datetime | None = None) -> DeliveryReport:
        """Deliver outbox entries: by default every one whose retry time has come; ``keys`` or
        ``alert_id`` narrow it; ``force`` ignores retry times and revives given-up entries. Never
        raises for a channel's failure: outcomes are recorded and returned."""
        when = now or datetime.now(UTC)
        wanted = set(keys) if keys is not None else None

        def select(entry: OutboxEntry) -> bool:
            if wanted is not None and entry.key not in wanted:
                return False
            if alert_id is not None and entry.alert_id != alert_id:
                return False
            return force or wanted is not None or entry.due(when)

        report = self.outbox.deliver(lambda: entries_from_events(self.events()), self.channels, select, now)
        self.reports.append(report)
        if report.busy:
            log.warning("alert delivery skipped: another process is delivering; pages stay in the outbox")
        for key, reason in report.failed.items():
            log.warning("alert delivery %s failed: %s", key, reason)
        return report

    def resend(self, alert_id: str | None = None, actor: str | None = None) -> DeliveryReport:
        """Retry now every undelivered page (of one alert), given-up ones included."""
        if alert_id is not None:
            self._find(alert_id)
        todo = [e for e in self.pending_deliveries() if alert_id is None or e.alert_id == alert_id]
        if todo:
            who = actor or getpass.getuser()
            self._record([{"alert_id": e.alert_id, "policy": e.policy, "component": e.component,
                           "event": "delivery_resend", "channel": e.channel, "delivery_of": e.delivery_of,
                           "actor": who} for e in todo])
        return self.deliver_pending(keys=[e.key for e in todo])

    def record_configuration(self, errors: Mapping[str, str]) -> None:
        """Record channel configuration errors found at start-up (one event per channel)."""
        if errors:
            self._record([{"event": "channel_misconfigured", "channel": name, "error": reason,
                           "actor": "tracelake"} for name, reason in errors.items()])

    def observe(self, policy: AlertPolicy, component: str, breached: bool, message: str, *,
                observed: float | None = None, threshold: float | None = None,
                when: datetime | None = None) -> str:
        """Feed one evaluation of a condition; returns what happened:
        ``opened``, ``repeated``, ``pending``, ``resolved``, ``cleared`` or ``ok``."""
        when = when or datetime.now(UTC)
        base = {"policy": policy.name, "component": component, "severity": policy.severity,
                "description": policy.description, "runbook_url": policy.runbook,
                "observed_value": observed, "threshold_value": threshold}
        current = self.active(policy.name, component)
        if breached:
            if current is not None:
                self._event(**base, alert_id=current.alert_id, event="repeated", status=current.status,
                            message=message, occurrences=current.occurrences + 1, first_seen=current.first_seen,
                            last_seen=when)
                return "repeated"
            streak = self._streak(policy.name, component) + 1
            if streak < policy.for_evaluations:
                self._event(**base, event="breach", status="pending", message=message, occurrences=streak,
                            last_seen=when)
                return "pending"
            alert_id = new_run_id()
            self._page(policy, **base, alert_id=alert_id, event="opened", status="open", message=message,
                       occurrences=streak, first_seen=when, last_seen=when)
            return "opened"
        if current is not None:
            self._page(policy, **base, alert_id=current.alert_id, event="resolved", status="resolved",
                       message=f"cleared: {message}", occurrences=current.occurrences, last_seen=when,
                       actor="tracelake")
            return "resolved"
        if self._streak(policy.name, component):
            self._event(**base, event="clear", status="ok", message=message, occurrences=0, last_seen=when)
            return "cleared"
        return "ok"

    def _find(self, alert_id: str) -> AlertState:
        for a in self.alerts():
            if a.alert_id == alert_id:
                return a
        raise KeyError(f"no alert {alert_id}; list them with `tracelake alerts`")

    def acknowledge(self, alert_id: str, actor: str | None = None) -> AlertState:
        a = self._find(alert_id)
        if a.status != "open":
            raise ValueError(f"alert {alert_id} is {a.status}; only open alerts can be acknowledged")
        self._event(alert_id=alert_id, event="acknowledged", status="acknowledged", policy=a.policy,
                    component=a.component, severity=a.severity, occurrences=a.occurrences,
                    actor=actor or getpass.getuser(), message=a.message)
        return self._find(alert_id)

    def resolve(self, alert_id: str, actor: str | None = None, reason: str = "") -> AlertState:
        a = self._find(alert_id)
        if a.status == "resolved":
            raise ValueError(f"alert {alert_id} is already resolved")
        self._event(alert_id=alert_id, event="resolved", status="resolved", policy=a.policy, component=a.component,
                    severity=a.severity, occurrences=a.occurrences, actor=actor or getpass.getuser(),
                    message=f"resolved by hand: {reason}" if reason else "resolved by hand")
        return self._find(alert_id)


def summarize(alerts: Sequence[AlertState]) -> list[dict[str, Any]]:
    return [{"alert_id": a.alert_id, "status": a.status, "severity": a.severity, "policy": a.policy,
             "component": a.component, "occurrences": a.occurrences, "first_seen": a.first_seen,
             "last_seen": a.last_seen, "message": a.message, "runbook": a.runbook_url,
             "deliveries": len(a.deliveries), "failed_deliveries": sum(not d["delivered"] for d in a.deliveries),
             "delivery": a.delivery_summary(), "outbox": [e.as_dict() for e in a.outbox]}
            for a in alerts]
