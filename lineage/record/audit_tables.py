"""The audit tables of the core, declared as values - nothing is registered anywhere.

Each :class:`AuditTable` pairs a name (its folder under ``<home>/audit``) with its Arrow schema.
The package that owns a table declares it as a module constant (the core's are below; the
monitors declare theirs in ``tracelake.monitors.audit_tables``) and passes it to the journal
when it writes. Nothing depends on which modules a process happened to import: the journal
keeps each table's schema beside its records, and the lakehouse lists the tables it holds
(``AuditStore.tables()``), so every command sees every chained table.

The schemas are the contract with every reader (Spark SQL, delta-rs, pandas), so fields are
only ever added, never renamed or retyped; old rows read the new fields as null, and the
canonical form (``chain``) drops nulls so adding a field never changes an old record's hash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "ADMIN_ACTIONS",
    "CHAIN_FIELDS",
    "CHECK_RESULTS",
    "COMPONENT_RUNS",
    "CORE_AUDIT_TABLES",
    "FLAGS",
    "METRICS",
    "RETENTION_CHECKS",
    "RUN_STATUSES",
    "STR_MAP",
    "TS",
    "AuditTable",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


TS = pa.timestamp("us", tz="UTC")
STR_MAP = pa.map_(pa.string(), pa.string())

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

_ADDED_FILE = pa.struct([
    pa.field("path", pa.string()),            # relative to the table root, as in the commit's add action
    pa.field("partition", pa.string()),       # value of _tl_partition (null: unpartitioned table)
    pa.field("rows", pa.int64()),
    pa.field("bytes", pa.int64()),
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
    pa.field("rejected_table", pa.string()),       # a batch a blocking test refused was kept here
    pa.field("rejected_version", pa.int64()),
    pa.field("rejected_rows", pa.int64()),
    # The run's OpenLineage run id (a UUID; see lineage.openlineage.ids): derived from run_id for
    # Tracelake's own runs, the producer's run id for external runs received over OpenLineage.
    pa.field("openlineage_run_id", pa.string()),
    pa.field("rolled_back_version", pa.int64()),   # a failed run's commit was taken back out at this version
    # The data files the output commit added (its add actions): a lineage hop reads exactly these
    # files instead of rebuilding the table's snapshot at a version (lineage/query/recorded.py).
    pa.field("output_added_files", pa.list_(_ADDED_FILE)),
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


@dataclass(frozen=True)
class AuditTable:
    """A chained audit table: one record per row, each linked to the previous by its hash."""

    name: str
    schema: pa.Schema
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"audit table name {self.name!r}: use lower-case letters, digits and underscores")
        missing = [f.name for f in CHAIN_FIELDS if f.name not in self.schema.names]
        if missing:
            raise ValueError(f"audit table {self.name!r} lacks the chain fields {missing}")

    @property
    def key(self) -> str:
        """The field that identifies a record (the first one)."""
        return self.schema.names[0]

    def __str__(self) -> str:
        return self.name


COMPONENT_RUNS = AuditTable("component_runs", _COMPONENT_RUNS, "one record per finished component run")
CHECK_RESULTS = AuditTable("check_results", _CHECK_RESULTS, "every declared test evaluated, per run")
METRICS = AuditTable("metrics", _METRICS, "ML and data metrics per run, window and slice")
FLAGS = AuditTable("flags", _FLAGS, "outputs marked wrong by a person, and withdrawals")
RETENTION_CHECKS = AuditTable("retention_checks", _RETENTION_CHECKS, "proofs that old versions are still readable")

ADMIN_ACTIONS = AuditTable("admin_actions", pa.schema([
    pa.field("action_id", pa.string(), nullable=False),
    pa.field("action", pa.string()),          # "sql" | "vacuum" | ...
    pa.field("statement", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("actor", pa.string()),
    pa.field("host", pa.string()),
    pa.field("outcome", pa.string()),         # "started" | "succeeded" | "failed: ..."
    pa.field("at", TS),
    *CHAIN_FIELDS,
]), "administrative actions on the lakehouse: who ran what, why, and how it ended")

CORE_AUDIT_TABLES: tuple[AuditTable, ...] = (COMPONENT_RUNS, CHECK_RESULTS, METRICS, FLAGS, RETENTION_CHECKS,
                                             ADMIN_ACTIONS)
