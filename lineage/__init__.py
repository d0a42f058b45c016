"""Tracelake's core: lakehouse layout, Spark/Delta session, the component-run recorder, the audit
store and (in later modules) lineage queries. Knows no particular pipeline."""

from tracelake.lineage.record.audit_tables import AUDIT_TABLES, CHECK_RESULTS, COMPONENT_RUNS, METRICS, register_audit_table
from tracelake.lineage.record.audit_store import AuditStore, ChainReport
from tracelake.lineage.record.component import ComponentSpec, TableVersion, component, component_spec, table_name_for
from tracelake.lineage.record.io_manager import DeltaIOManager
from tracelake.lineage.record.journal import Journal
from tracelake.lineage.lakehouse import Lakehouse, LakehouseResource, open_lakehouse
from tracelake.lineage.layout import PARTITION_COLUMN, RESERVED_COLUMNS, RUN_ID_COLUMN, Layout
from tracelake.lineage.record.mlflow_link import MlflowResource
from tracelake.lineage.record.recorder import ComponentRun, MissingInputError, Recorder, current_run
from tracelake.lineage.record.redact import redact_mapping, scrub_text
from tracelake.lineage.settings import Settings, load_settings
from tracelake.lineage.spark import SparkResource, get_spark

__all__ = [
    "AUDIT_TABLES", "CHECK_RESULTS", "COMPONENT_RUNS", "METRICS", "register_audit_table",
    "AuditStore", "ChainReport", "ComponentSpec", "TableVersion", "component", "component_spec",
    "table_name_for", "DeltaIOManager", "Journal", "Lakehouse", "LakehouseResource", "open_lakehouse",
    "PARTITION_COLUMN", "RESERVED_COLUMNS", "RUN_ID_COLUMN", "Layout", "MlflowResource",
    "ComponentRun", "MissingInputError", "Recorder", "current_run", "redact_mapping", "scrub_text",
    "Settings", "load_settings", "SparkResource", "get_spark",
]
