"""Alerts people act on: policies, deduplication, resolution, acknowledgement, delivery.

One open alert per (policy, component): a breach that persists adds to that alert's count
instead of paging again; when the condition clears the alert resolves (and says so on its
channels); a person acknowledges or resolves it from the CLI. Every state change, and every
delivery attempt, is an event in ``audit.alerts`` (chained like every audit record), so the
history of an alert can be replayed and audited.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

import pandas as pd

from tracelake.lineage import Lakehouse
from tracelake.lineage.record.runid import new_run_id
from tracelake.monitors.audit_tables import ALERTS

from tracelake.monitors.alerts.channels import deliver

__all__ = ["AlertPolicy", "AlertManager", "AlertState", "ALERTS"]



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
    deliveries: list[dict[str, Any]] = field(default_factory=list)


class AlertManager:
    def __init__(self, lake: Lakehouse, channels: dict[str, Any] | None = None, attempts: int = 3,
                 backoff_s: float = 0.5):
        self.lake = lake
        self.channels = channels or {}
        self.attempts = attempts
        self.backoff_s = backoff_s

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
                                     "delivered": e["event"] == "delivered", "error": e["error"], "at": e["at"]})
        out = list(states.values())
        return [a for a in out if status is None or a.status == status]

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
        row = {"event_id": new_run_id(), "at": datetime.now(timezone.utc), **fields}
        return self.lake.journal.append(ALERTS, row["event_id"], row)

    def observe(self, policy: AlertPolicy, component: str, breached: bool, message: str, *,
                observed: float | None = None, threshold: float | None = None,
                when: datetime | None = None) -> str:
        """Feed one evaluation of a condition; returns what happened:
        ``opened``, ``repeated``, ``pending``, ``resolved``, ``cleared`` or ``ok``."""
        when = when or datetime.now(timezone.utc)
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
            self._event(**base, alert_id=alert_id, event="opened", status="open", message=message,
                        occurrences=streak, first_seen=when, last_seen=when)
            self._deliver(policy, alert_id, component, f"[{policy.severity.upper()}] {policy.name} on {component}",
                          message, observed, threshold)
            return "opened"
        if current is not None:
            self._event(**base, alert_id=current.alert_id, event="resolved", status="resolved",
                        message=f"cleared: {message}", occurrences=current.occurrences, last_seen=when, actor="tracelake")
            self._deliver(policy, current.alert_id, component, f"[RESOLVED] {policy.name} on {component}",
                          message, observed, threshold)
            return "resolved"
        if self._streak(policy.name, component):
            self._event(**base, event="clear", status="ok", message=message, occurrences=0, last_seen=when)
            return "cleared"
        return "ok"

    def _deliver(self, policy: AlertPolicy, alert_id: str, component: str, subject: str, body: str,
                 observed: float | None, threshold: float | None) -> None:
        payload = {"alert_id": alert_id, "policy": policy.name, "component": component, "severity": policy.severity,
                   "observed": observed, "threshold": threshold, "runbook": policy.runbook,
                   "description": policy.description}
        text = f"{body}\n{policy.description}\nRunbook: {policy.runbook or '-'}"
        for name in policy.channels:
            channel = self.channels.get(name)
            if channel is None:
                continue
            for outcome in deliver(channel, subject, text, payload, attempts=self.attempts, backoff_s=self.backoff_s):
                self._event(alert_id=alert_id, policy=policy.name, component=component,
                            event="delivered" if outcome.delivered else "delivery_failed", channel=outcome.channel,
                            attempt=outcome.attempt, error=outcome.error)

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
             "deliveries": len(a.deliveries), "failed_deliveries": sum(not d["delivered"] for d in a.deliveries)}
            for a in alerts]
