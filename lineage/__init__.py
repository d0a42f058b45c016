"""Tracelake's core: lakehouse layout, Spark/Delta session, the component-run recorder, the audit
store and (in later modules) lineage queries. Knows no particular pipeline."""

from .audit_schema import AUDIT_TABLES, CHECK_RESULTS, COMPONENT_RUNS, METRICS, register_audit_table
from .audit_store import AuditStore, ChainReport
from .component import ComponentSpec, TableVersion, component, component_spec, table_name_for
from .io_manager import DeltaIOManager
from .journal import Journal
from .lakehouse import Lakehouse, LakehouseResource, open_lakehouse
from .layout import PARTITION_COLUMN, RESERVED_COLUMNS, RUN_ID_COLUMN, Layout
from .mlflow_link import MlflowResource
from .recorder import ComponentRun, MissingInputError, Recorder, current_run
from .redact import redact_mapping, scrub_text
from .settings import Settings, load_settings
from .spark import SparkResource, get_spark

__all__ = [
    "AUDIT_TABLES", "CHECK_RESULTS", "COMPONENT_RUNS", "METRICS", "register_audit_table",
    "AuditStore", "ChainReport", "ComponentSpec", "TableVersion", "component", "component_spec",
    "table_name_for", "DeltaIOManager", "Journal", "Lakehouse", "LakehouseResource", "open_lakehouse",
    "PARTITION_COLUMN", "RESERVED_COLUMNS", "RUN_ID_COLUMN", "Layout", "MlflowResource",
    "ComponentRun", "MissingInputError", "Recorder", "current_run", "redact_mapping", "scrub_text",
    "Settings", "load_settings", "SparkResource", "get_spark",
]
