"""Tracelake's core: the lakehouse, the component-run recorder and its audit store, lineage
queries and the integrity checks. Knows no particular pipeline.

    record/     @component, the materialisation lifecycle, journal, audit store, Delta metadata
    query/      runs, trace, impact, history, flags and review, Spark SQL, reproduce
    integrity/  audit verify, reconciliation reports, retention and guarded VACUUM
    openlineage/  every run published as OpenLineage events; other producers' runs received as external runs
"""

from __future__ import annotations

import importlib
from typing import Any

# Every public name, resolved on first use (PEP 562): importing any submodule runs this file, and
# a `tracelake trace` process must not import Dagster, Spark or MLflow to answer from the audit.
_EXPORTS = {
    "Lakehouse": "tracelake.lineage.lakehouse",
    "open_lakehouse": "tracelake.lineage.lakehouse",
    "LakehouseResource": "tracelake.lineage.lakehouse_resource",
    "PARTITION_COLUMN": "tracelake.lineage.layout",
    "RESERVED_COLUMNS": "tracelake.lineage.layout",
    "RUN_ID_COLUMN": "tracelake.lineage.layout",
    "Layout": "tracelake.lineage.layout",
    "AuditStore": "tracelake.lineage.record.audit_store",
    "CHECK_RESULTS": "tracelake.lineage.record.audit_tables",
    "COMPONENT_RUNS": "tracelake.lineage.record.audit_tables",
    "CORE_AUDIT_TABLES": "tracelake.lineage.record.audit_tables",
    "METRICS": "tracelake.lineage.record.audit_tables",
    "AuditTable": "tracelake.lineage.record.audit_tables",
    "component": "tracelake.lineage.record.component",
    "component_spec": "tracelake.lineage.record.component",
    "BlockingCheckFailed": "tracelake.lineage.record.errors",
    "MissingInputError": "tracelake.lineage.record.errors",
    "SourceMissing": "tracelake.lineage.record.errors",
    "DeltaIOManager": "tracelake.lineage.record.io_manager",
    "Journal": "tracelake.lineage.record.journal",
    "MlflowResource": "tracelake.lineage.record.mlflow_resource",
    "Recorder": "tracelake.lineage.record.recorder",
    "redact_mapping": "tracelake.lineage.record.redact",
    "scrub_text": "tracelake.lineage.record.redact",
    "ComponentRun": "tracelake.lineage.record.run",
    "current_run": "tracelake.lineage.record.run",
    "ComponentSpec": "tracelake.lineage.record.spec",
    "table_name_for": "tracelake.lineage.record.spec",
    "Settings": "tracelake.lineage.settings",
    "load_settings": "tracelake.lineage.settings",
    "SparkResource": "tracelake.lineage.spark",
    "get_spark": "tracelake.lineage.spark",
}

__all__ = [
    "CHECK_RESULTS",
    "COMPONENT_RUNS",
    "CORE_AUDIT_TABLES",
    "METRICS",
    "PARTITION_COLUMN",
    "RESERVED_COLUMNS",
    "RUN_ID_COLUMN",
    "AuditStore",
    "AuditTable",
    "BlockingCheckFailed",
    "ComponentRun",
    "ComponentSpec",
    "DeltaIOManager",
    "Journal",
    "Lakehouse",
    "LakehouseResource",
    "Layout",
    "MissingInputError",
    "MlflowResource",
    "Recorder",
    "Settings",
    "SourceMissing",
    "SparkResource",
    "component",
    "component_spec",
    "current_run",
    "get_spark",
    "load_settings",
    "open_lakehouse",
    "redact_mapping",
    "scrub_text",
    "table_name_for",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
