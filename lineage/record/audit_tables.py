"""Arrow schemas of the audit tables, and the canonical form that the hash chain signs.

The schemas are the contract with every reader (Spark SQL, delta-rs, pandas), so fields are
only ever added, never renamed or retyped; old rows read the new fields as null, and the
canonical form drops nulls so adding a field never changes an old record's hash.

Other packages (monitors) add their own tables with :func:`register_audit_table`; the core
knows nothing about what they store.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from typing import Any, Mapping

import pyarrow as pa

__all__ = [
    "AUDIT_TABLES", "CHAIN_FIELDS", "COMPONENT_RUNS", "CHECK_RESULTS", "METRICS", "FLAGS", "RETENTION_CHECKS",
    "register_audit_table", "audit_schema", "normalize_row", "canonical_json", "chain_hash",
    "encode_payload", "decode_payload", "RUN_STATUSES",
]

TS = pa.timestamp("us", tz="UTC")
STR_MAP = pa.map_(pa.string(), pa.string())

COMPONENT_RUNS = "component_runs"
CHECK_RESULTS = "check_results"
METRICS = "metrics"

RUN_STATUSES = ("started", "succeeded", "failed", "skipped", "abandoned")

CHAIN_FIELDS = [
    pa.field("journal_id", pa.string()),
    pa.field("chain_seq", pa.int64()),
    pa.field("prev_hash", pa.string()),
    pa.field("record_hash", pa.string()),
    pa.field("recorded_at", TS),
]

_INPUT = pa.struct([
    pa.field("kind", pa.string()),            # "table" | "model"
    pa.field("name", pa.string()),            # asset/table name or registered model name
    pa.field("path", pa.string()),
    pa.field("version", pa.int64()),          # Delta version actually read
    pa.field("partitions", pa.list_(pa.string())),
    pa.field("missing_partitions", pa.list_(pa.string())),
    pa.field("model_version", pa.string()),
    pa.field("mlflow_run_id", pa.string()),
    pa.field("uri", pa.string()),
])

_MODEL = pa.struct([
    pa.field("role", pa.string()),            # "registered" | "loaded"
    pa.field("name", pa.string()),
    pa.field("version", pa.string()),
    pa.field("uri", pa.string()),
    pa.field("mlflow_run_id", pa.string()),
])

_COMPONENT_RUNS = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("component", pa.string()),
    pa.field("asset_key", pa.string()),
    pa.field("partition_key", pa.string()),
    pa.field("dagster_run_id", pa.string()),
    pa.field("status", pa.string()),
    pa.field("started_at", TS),
    pa.field("ended_at", TS),
    pa.field("duration_ms", pa.float64()),
    pa.field("error_type", pa.string()),
    pa.field("error_message", pa.string()),
    pa.field("error_trace", pa.string()),
    pa.field("code_version", pa.string()),
    pa.field("git_commit", pa.string()),
    pa.field("git_dirty", pa.bool_()),
    pa.field("git_branch", pa.string()),
    pa.field("source_hash", pa.string()),
    pa.field("library_versions", STR_MAP),
    pa.field("config_json", pa.string()),
    pa.field("owner", pa.string()),
    pa.field("tags", STR_MAP),
    pa.field("lineage_keys_json", pa.string()),   # how output keys map to input keys (row lineage)
    pa.field("inputs", pa.list_(_INPUT)),
    pa.field("output_table", pa.string()),
    pa.field("output_path", pa.string()),
    pa.field("output_version", pa.int64()),
    pa.field("output_rows", pa.int64()),
    pa.field("output_files", pa.int64()),
    pa.field("output_bytes", pa.int64()),
    pa.field("output_partitions", pa.list_(pa.string())),
    pa.field("output_schema_hash", pa.string()),
    pa.field("output_schema_json", pa.string()),
    pa.field("content_digest", pa.string()),
    pa.field("write_mode", pa.string()),
    pa.field("quarantine_table", pa.string()),     # rows that failed a quarantining test went here
    pa.field("quarantine_version", pa.int64()),
    pa.field("quarantined_rows", pa.int64()),
    pa.field("models", pa.list_(_MODEL)),
    pa.field("metrics", pa.map_(pa.string(), pa.float64())),
    pa.field("mlflow_experiment_id", pa.string()),
    pa.field("mlflow_run_id", pa.string()),
    pa.field("mlflow_run_url", pa.string()),
    pa.field("host", pa.string()),
    pa.field("pid", pa.int64()),
    *CHAIN_FIELDS,
])

_CHECK_RESULTS = pa.schema([
    pa.field("check_id", pa.string(), nullable=False),
    pa.field("run_id", pa.string()),
    pa.field("component", pa.string()),
    pa.field("asset_key", pa.string()),
    pa.field("partition_key", pa.string()),
    pa.field("dagster_run_id", pa.string()),
    pa.field("check_name", pa.string()),
    pa.field("severity", pa.string()),        # "warn" | "error"
    pa.field("passed", pa.bool_()),
    pa.field("blocking", pa.bool_()),
    pa.field("observed_value", pa.float64()),
    pa.field("observed_text", pa.string()),
    pa.field("threshold_value", pa.float64()),
    pa.field("threshold_text", pa.string()),
    pa.field("failing_rows", pa.int64()),
    pa.field("description", pa.string()),
    pa.field("runbook_url", pa.string()),
    pa.field("details_json", pa.string()),
    pa.field("evaluated_at", TS),
    *CHAIN_FIELDS,
])

_METRICS = pa.schema([
    pa.field("metric_id", pa.string(), nullable=False),
    pa.field("run_id", pa.string()),
    pa.field("component", pa.string()),
    pa.field("partition_key", pa.string()),
    pa.field("metric", pa.string()),
    pa.field("value", pa.float64()),
    pa.field("window_start", TS),
    pa.field("window_end", TS),
    pa.field("slice_key", pa.string()),
    pa.field("slice_value", pa.string()),
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.string()),
    pa.field("source", pa.string()),          # "component" | "evaluation" | "mlflow" | ...
    pa.field("computed_at", TS),
    *CHAIN_FIELDS,
])

FLAGS = "flags"
_FLAGS = pa.schema([
    pa.field("flag_id", pa.string(), nullable=False),
    pa.field("action", pa.string()),          # "flag" | "unflag"
    pa.field("target_flag_id", pa.string()),  # for "unflag": the flag it withdraws
    pa.field("table_name", pa.string()),
    pa.field("predicate", pa.string()),
    pa.field("table_version", pa.int64()),    # the version the rows were judged at
    pa.field("rows", pa.int64()),
    pa.field("writer_run_ids", pa.list_(pa.string())),
    pa.field("reason", pa.string()),
    pa.field("flagged_by", pa.string()),
    pa.field("flagged_at", TS),
    *CHAIN_FIELDS,
])

RETENTION_CHECKS = "retention_checks"
_RETENTION_CHECKS = pa.schema([
    pa.field("check_id", pa.string(), nullable=False),
    pa.field("table_name", pa.string()),
    pa.field("table_path", pa.string()),
    pa.field("kind", pa.string()),            # "data" | "audit"
    pa.field("oldest_version", pa.int64()),
    pa.field("latest_version", pa.int64()),
    pa.field("run_id", pa.string()),
    pa.field("ok", pa.bool_()),
    pa.field("problems", pa.list_(pa.string())),
    pa.field("log_retention", pa.string()),
    pa.field("file_retention", pa.string()),
    pa.field("checked_at", TS),
    *CHAIN_FIELDS,
])

AUDIT_TABLES: dict[str, pa.Schema] = {
    COMPONENT_RUNS: _COMPONENT_RUNS,
    CHECK_RESULTS: _CHECK_RESULTS,
    METRICS: _METRICS,
    FLAGS: _FLAGS,
    RETENTION_CHECKS: _RETENTION_CHECKS,
}


def register_audit_table(name: str, schema: pa.Schema) -> None:
    """Add an audit table (must include the chain fields); re-registering the same schema is a no-op."""
    missing = [f.name for f in CHAIN_FIELDS if f.name not in schema.names]
    if missing:
        raise ValueError(f"audit table {name!r} schema lacks chain fields {missing}")
    existing = AUDIT_TABLES.get(name)
    if existing is not None and not existing.equals(schema):
        raise ValueError(f"audit table {name!r} is already registered with a different schema")
    AUDIT_TABLES[name] = schema


_FALLBACKS: list = []  # callables name -> schema | None (the journal's saved schemas)


def audit_schema(name: str) -> pa.Schema:
    schema = AUDIT_TABLES.get(name)
    if schema is None:
        for lookup in _FALLBACKS:
            schema = lookup(name)
            if schema is not None:
                AUDIT_TABLES[name] = schema
                break
    if schema is None:
        raise KeyError(f"unknown audit table {name!r}; known: {sorted(AUDIT_TABLES)}")
    return schema


# --- journal payload encoding ---------------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__} into an audit record")


def encode_payload(row: Mapping[str, Any]) -> str:
    return json.dumps(row, default=_json_default, sort_keys=True, separators=(",", ":"))


def decode_payload(text: str, schema: pa.Schema) -> dict[str, Any]:
    """Inverse of :func:`encode_payload`: top-level timestamp fields become datetimes again."""
    row = json.loads(text)
    for field in schema:
        value = row.get(field.name)
        if pa.types.is_timestamp(field.type) and isinstance(value, str):
            row[field.name] = datetime.fromisoformat(value)
        elif pa.types.is_map(field.type) and isinstance(value, list):
            row[field.name] = [tuple(pair) for pair in value]  # JSON turned (key, value) into lists
    return row


# --- canonical form and hash chain ------------------------------------------------------------

def normalize_row(row: Mapping[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """The row as any Delta reader will return it: coerced through the Arrow schema.

    Hashing this form (not the Python dict we built) is what lets the verifier recompute the
    same hash from the Delta table years later. Unknown keys are an error, not silently lost.
    """
    extra = set(row) - set(schema.names)
    if extra:
        raise ValueError(f"fields {sorted(extra)} are not in the audit schema")
    return pa.Table.from_pylist([dict(row)], schema=schema).to_pylist()[0]


def _canon(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):  # Arrow map
            return {str(k): _canon(v) for k, v in sorted(value) if v is not None}
        return [_canon(v) for v in value]
    if isinstance(value, tuple):
        return [_canon(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def canonical_json(row: Mapping[str, Any], exclude: tuple[str, ...] = ("record_hash",)) -> str:
    body = {k: v for k, v in row.items() if k not in exclude}
    return json.dumps(_canon(body), sort_keys=True, separators=(",", ":"), default=str)


def chain_hash(prev_hash: str | None, normalized_row: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    h.update((prev_hash or "").encode())
    h.update(b"\n")
    h.update(canonical_json(normalized_row).encode())
    return h.hexdigest()
