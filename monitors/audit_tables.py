"""The monitors' audit tables, declared in one place (the core's are in
``tracelake.lineage.record.audit_tables``). Chained like every audit record; nothing is
registered at import - whoever writes passes the table, and the lakehouse lists what it holds.
"""

from __future__ import annotations

import pyarrow as pa

from tracelake.lineage.record.audit_tables import CHAIN_FIELDS, TS, AuditTable

__all__ = ["ALERTS", "ANOMALIES", "MONITOR_AUDIT_TABLES", "PROFILE_SPECS", "SLA_EVALUATIONS"]

ALERTS = AuditTable("alerts", pa.schema([
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("alert_id", pa.string()),
    # breach | clear | opened | repeated | acknowledged | resolved | channel_misconfigured, and the
    # outbox's delivery_pending | delivered | delivery_failed | delivery_deferred | delivery_resend
    pa.field("event", pa.string()),
    pa.field("policy", pa.string()),
    pa.field("component", pa.string()),
    pa.field("severity", pa.string()),
    pa.field("status", pa.string()),       # pending | open | acknowledged | resolved (after this event)
    pa.field("message", pa.string()),
    pa.field("observed_value", pa.float64()),
    pa.field("threshold_value", pa.float64()),
    pa.field("description", pa.string()),
    pa.field("runbook_url", pa.string()),
    pa.field("occurrences", pa.int64()),
    pa.field("first_seen", TS),
    pa.field("last_seen", TS),
    pa.field("channel", pa.string()),
    pa.field("attempt", pa.int64()),
    pa.field("error", pa.string()),
    pa.field("actor", pa.string()),
    pa.field("at", TS),
    pa.field("delivery_of", pa.string()),  # outbox rows: the event_id of the paging event (opened/resolved) delivered
    pa.field("next_attempt_at", TS),       # delivery_pending/_failed/_deferred: when it is (re)tried; null: given up
    *CHAIN_FIELDS,
]), "alert lifecycle events: opened, repeated, acknowledged, resolved, deliveries (the outbox)")

ANOMALIES = AuditTable("anomalies", pa.schema([
    pa.field("anomaly_id", pa.string(), nullable=False),
    pa.field("monitor", pa.string()),
    pa.field("component", pa.string()),
    pa.field("metric", pa.string()),
    pa.field("slice", pa.string()),
    pa.field("time", TS),
    pa.field("value", pa.float64()),
    pa.field("expected", pa.float64()),
    pa.field("lower", pa.float64()),
    pa.field("upper", pa.float64()),
    pa.field("rule", pa.string()),
    pa.field("detected_at", TS),
    *CHAIN_FIELDS,
]), "anomalies found in metric history (stored, not paged)")

SLA_EVALUATIONS = AuditTable("sla_evaluations", pa.schema([
    pa.field("evaluation_id", pa.string(), nullable=False),
    pa.field("sla", pa.string()),
    pa.field("component", pa.string()),
    pa.field("breached", pa.bool_()),
    pa.field("evaluable", pa.bool_()),
    pa.field("observed_value", pa.float64()),
    pa.field("threshold_value", pa.float64()),
    pa.field("message", pa.string()),
    pa.field("window_start", TS),
    pa.field("window_end", TS),
    pa.field("as_of", TS),
    pa.field("details_json", pa.string()),
    *CHAIN_FIELDS,
]), "every SLA evaluation, breached or not")

PROFILE_SPECS = AuditTable("profile_specs", pa.schema([
    pa.field("spec_id", pa.string(), nullable=False),
    pa.field("table_name", pa.string()),
    pa.field("columns", pa.string()),        # comma-separated, to find the spec of a column set
    pa.field("spec_json", pa.string()),
    pa.field("derived_from", pa.string()),   # e.g. "training_set@v3 partitions 2026-W01,2026-W02"
    pa.field("created_at", pa.timestamp("us", tz="UTC")),
    *CHAIN_FIELDS,
]), "the fixed bins of each table's drift profiles")

MONITOR_AUDIT_TABLES: tuple[AuditTable, ...] = (ALERTS, ANOMALIES, SLA_EVALUATIONS, PROFILE_SPECS)
