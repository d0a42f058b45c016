"""Tracelake's core: the lakehouse, the component-run recorder and its audit store, lineage
queries and the integrity checks. Knows no particular pipeline.

    record/     @component, the materialisation lifecycle, journal, audit store, Delta metadata
    query/      runs, trace, impact, history, flags and review, Spark SQL, reproduce
    integrity/  audit verify, reconciliation reports, retention and guarded VACUUM
    openlineage/  every run published as OpenLineage events; other producers' runs received as external runs
"""

from tracelake.lineage.lakehouse import Lakehouse, LakehouseResource, open_lakehouse
from tracelake.lineage.layout import PARTITION_COLUMN, RESERVED_COLUMNS, RUN_ID_COLUMN, Layout
from tracelake.lineage.record.audit_store import AuditStore
from tracelake.lineage.record.audit_tables import CHECK_RESULTS, COMPONENT_RUNS, CORE_AUDIT_TABLES, METRICS, AuditTable
from tracelake.lineage.record.component import component, component_spec
from tracelake.lineage.record.errors import BlockingCheckFailed, MissingInputError, SourceMissing
from tracelake.lineage.record.io_manager import DeltaIOManager
from tracelake.lineage.record.journal import Journal
from tracelake.lineage.record.mlflow_link import MlflowResource
from tracelake.lineage.record.recorder import Recorder
from tracelake.lineage.record.redact import redact_mapping, scrub_text
from tracelake.lineage.record.run import ComponentRun, current_run
from tracelake.lineage.record.spec import ComponentSpec, table_name_for
from tracelake.lineage.settings import Settings, load_settings
from tracelake.lineage.spark import SparkResource, get_spark

__all__ = [
    "AuditStore", "AuditTable", "BlockingCheckFailed", "CHECK_RESULTS", "COMPONENT_RUNS", "CORE_AUDIT_TABLES",
    "ComponentRun", "ComponentSpec", "DeltaIOManager", "Journal", "Lakehouse", "LakehouseResource", "Layout",
    "METRICS", "MissingInputError", "MlflowResource", "PARTITION_COLUMN", "RESERVED_COLUMNS", "RUN_ID_COLUMN",
    "Recorder", "Settings", "SourceMissing", "SparkResource", "component", "component_spec", "current_run",
    "get_spark", "load_settings", "open_lakehouse", "redact_mapping", "scrub_text", "table_name_for",
]
