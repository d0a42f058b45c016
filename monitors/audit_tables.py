"""The monitors' audit tables, declared in one place (the core's are in
``tracelake.lineage.record.audit_tables``). Chained like every audit record; nothing is
registered at import - whoever writes passes the table, and the lakehouse lists what it holds.
"""

from __future__ import annotations

import pyarrow as pa

from tracelake.lineage.record.audit_tables import CHAIN_FIELDS, TS, AuditTable

__all__ = ["ALERTS", "ANOMALIES", "MONITOR_AUDIT_TABLES", "PROFILE_SPECS", "REPORTS", "SLA_EVALUATIONS"]

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

_FILE = pa.struct([
    pa.field("format", pa.string()),       # json | html | pdf
    pa.field("name", pa.string()),
    pa.field("path", pa.string()),
    pa.field("sha256", pa.string()),
    pa.field("bytes", pa.int64()),
])
_HEAD = pa.struct([
    pa.field("table", pa.string()),
    pa.field("journal_id", pa.string()),
    pa.field("chain_seq", pa.int64()),
    pa.field("record_hash", pa.string()),
    pa.field("records", pa.int64()),
])
_CITED = pa.struct([
    pa.field("run_id", pa.string()),
    pa.field("chain_seq", pa.int64()),
    pa.field("record_hash", pa.string()),
])

REPORTS = AuditTable("reports", pa.schema([
    pa.field("report_id", pa.string(), nullable=False),
    pa.field("kind", pa.string()),               # model | period | decision
    pa.field("subject", pa.string()),            # e.g. "tip_model v2", "2026-01-01..2026-01-31"
    pa.field("title", pa.string()),
    pa.field("params_json", pa.string()),
    pa.field("files", pa.list_(_FILE)),
    pa.field("cited_runs", pa.list_(_CITED)),    # component runs the report relies on, with their record hashes
    pa.field("chain_heads", pa.list_(_HEAD)),    # every audit chain's head when the report was built
    pa.field("supersedes", pa.string()),         # the previous report of the same subject, if any
    pa.field("trigger", pa.string()),            # cli | schedule | sensor | demo | api
    pa.field("dagster_run_id", pa.string()),
    pa.field("issued_by", pa.string()),
    pa.field("host", pa.string()),
    pa.field("issued_at", TS),
    *CHAIN_FIELDS,
]), "every compliance report issued: the SHA-256 of its files and the records it was built from")

MONITOR_AUDIT_TABLES: tuple[AuditTable, ...] = (ALERTS, ANOMALIES, SLA_EVALUATIONS, PROFILE_SPECS, REPORTS)
