"""Pieces every report kind shares: declared-test tables, alert lifecycles, run descriptions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from tracelake.monitors.compliance.records import Records, plain

__all__ = [
    "RUN_COLUMNS",
    "alert_lifecycles",
    "check_issue_rows",
    "check_summary_rows",
    "day_bounds",
    "quarantine_rows",
    "run_row",
    "table",
]

RUN_COLUMNS = ["component", "partition_key", "status", "run_id", "output", "rows", "schema_hash", "content_digest"]


def table(title: str, columns: list[str], rows: list[dict[str, Any]], note: str | None = None) -> dict[str, Any]:
    out = {"title": title, "columns": columns, "rows": [plain({c: r.get(c) for c in columns}) for r in rows]}
    if note:
        out["note"] = note
    return out


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00, day after last 00:00) in UTC."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return start, end


def run_row(records: Records, run_id: str, **extra: Any) -> dict[str, Any]:
    """One recorded run as a report row. Schema hash and content digest stay whole, as recorded at
    write time: the JSON is machine-readable evidence, compared against the audit record (only the
    HTML/PDF shorten them, for legibility - ``render_html``)."""
    rec = records.record(run_id)
    version = rec.get("output_version")
    return {
        "component": rec.get("component"), "partition_key": rec.get("partition_key"), "status": rec.get("status"),
        "run_id": run_id,
        "output": f"{rec.get('output_table')}@v{version}" if version is not None else None,
        "rows": rec.get("output_rows"), "schema_hash": rec.get("output_schema_hash"),
        "content_digest": rec.get("content_digest"), **extra,
    }


def _is_failure(frame: pd.DataFrame) -> pd.Series:
    return ~frame["passed"].astype(bool) & (frame["severity"] != "warn")


def _is_warning(frame: pd.DataFrame) -> pd.Series:
    return ~frame["passed"].astype(bool) & (frame["severity"] == "warn")


def check_summary_rows(checks: pd.DataFrame, side: str | None = None) -> list[dict[str, Any]]:
    """Per (component, check): how often evaluated, passed, failed (error) and warned."""
    if checks.empty:
        return []
    frame = checks.assign(failed=_is_failure(checks), warned=_is_warning(checks), ok=checks["passed"].astype(bool))
    rows = []
    for (component, name), g in frame.groupby(["component", "check_name"], sort=True):
        rows.append({"side": side, "component": component, "check": name, "evaluated": len(g),
                     "passed": int(g["ok"].sum()), "failed": int(g["failed"].sum()), "warned": int(g["warned"].sum()),
                     "blocking": bool(g["blocking"].astype(bool).any()), "severity": g["severity"].iloc[-1],
                     "description": g["description"].iloc[-1]})
    return rows


def check_issue_rows(checks: pd.DataFrame, side: str | None = None) -> list[dict[str, Any]]:
    """Every failed or warned result, oldest first."""
    if checks.empty:
        return []
    bad = checks[~checks["passed"].astype(bool)].sort_values(["evaluated_at", "check_id"])
    out = []
    for r in bad.to_dict("records"):
        out.append({"side": side, "component": r["component"], "partition_key": r["partition_key"],
                    "check": r["check_name"], "outcome": "warned" if r["severity"] == "warn" else "failed",
                    "severity": r["severity"], "blocking": bool(r["blocking"]),
                    "observed": r.get("observed_text") or r.get("observed_value"),
                    "threshold": r.get("threshold_text") or r.get("threshold_value"),
                    "failing_rows": r.get("failing_rows"), "run_id": r["run_id"], "check_id": r["check_id"],
                    "runbook": r.get("runbook_url"), "evaluated_at": r.get("evaluated_at")})
    return out


def quarantine_rows(records: Records, run_ids: Iterable[str], side: str | None = None) -> list[dict[str, Any]]:
    """Runs that set rows aside (quarantine), had a batch refused (rejected) or missed input partitions."""
    out = []
    for run_id in sorted(run_ids):
        if not records.index.has(run_id):
            continue
        rec = records.index.record(run_id)
        missing = sorted({p for i in rec["inputs"] for p in (i.get("missing_partitions") or [])})
        quarantined = rec.get("quarantined_rows") or 0
        rejected = rec.get("rejected_rows") or 0
        if not (quarantined or rejected or missing):
            continue
        records.cited.add(run_id)
        q_version = rec.get("quarantine_version")
        r_version = rec.get("rejected_version")
        out.append({"side": side, "component": rec["component"], "partition_key": rec.get("partition_key"),
                    "run_id": run_id, "status": rec.get("status"), "quarantined_rows": quarantined or None,
                    "quarantine": f"{rec.get('quarantine_table')}@v{q_version}" if q_version is not None else None,
                    "rejected_rows": rejected or None,
                    "rejected": f"{rec.get('rejected_table')}@v{r_version}" if r_version is not None else None,
                    "missing_input_partitions": ", ".join(missing) or None})
    return out


def alert_lifecycles(events: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per alert: opened, acknowledged, resolved (when and by whom), runbook."""
    if events.empty:
        return []
    alerts: dict[str, dict[str, Any]] = {}
    for e in events[events["alert_id"].notna()].to_dict("records"):
        a = alerts.get(e["alert_id"])
        if e["event"] == "opened":
            alerts[e["alert_id"]] = a = {
                "alert_id": e["alert_id"], "policy": e["policy"], "component": e["component"],
                "severity": e["severity"], "status": "open", "opened": e.get("first_seen") or e.get("at"),
                "acknowledged": None, "acknowledged_by": None, "resolved": None, "resolved_by": None,
                "last_seen": e.get("last_seen"), "occurrences": int(e.get("occurrences") or 1),
                "message": e.get("message"), "runbook": e.get("runbook_url"), "description": e.get("description"),
                "deliveries": 0, "failed_deliveries": 0}
            continue
        if a is None:
            continue
        if e["event"] == "repeated":
            a["occurrences"] = int(e.get("occurrences") or a["occurrences"])
            a["last_seen"] = e.get("last_seen") or a["last_seen"]
            a["message"] = e.get("message") or a["message"]
        elif e["event"] == "acknowledged":
            a["status"] = "acknowledged"
            a["acknowledged"], a["acknowledged_by"] = e.get("at"), e.get("actor")
        elif e["event"] == "resolved":
            a["status"] = "resolved"
            a["resolved"] = e.get("last_seen") if e.get("actor") == "tracelake" and e.get("last_seen") is not None \
                else e.get("at")
            a["resolved_by"] = e.get("actor")
            a["resolution"] = e.get("message")
        elif e["event"] in ("delivered", "delivery_failed"):
            a["deliveries"] += 1
            a["failed_deliveries"] += e["event"] == "delivery_failed"
    return sorted(alerts.values(), key=lambda a: (str(a["opened"]), a["alert_id"]))


ALERT_COLUMNS = ["policy", "component", "severity", "status", "opened", "acknowledged", "acknowledged_by", "resolved",
                 "resolved_by", "occurrences", "runbook", "message", "alert_id"]
