"""The platform's compliance reports as Dagster assets of the reference pipeline's code location.

- ``period_compliance_report`` (monthly partitions): the period report of the month - models
  served, runs and outcomes, failed tests, alerts, drift, retention - issued and recorded.
- ``model_compliance_report`` (one dynamic partition per registered model version, added by the
  sensor in ``jobs/compliance.py``): the model version's dossier, issued and recorded.

Each materialisation's metadata links the issued files (HTML, PDF, JSON) with their SHA-256 and
the ``audit.reports`` record, so the Dagster UI leads to the reports. The builders live in
``tracelake.monitors.compliance`` and know no particular pipeline; only the partitions are ours.
"""


from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from tracelake.lineage import LakehouseResource
from tracelake.monitors.compliance.cli import issue_model, issue_period

from .partitions import SIM_START

__all__ = [
    "COMPLIANCE_ASSETS",
    "model_compliance_report",
    "model_partition_key",
    "model_versions",
    "monthly",
    "parse_model_partition",
    "period_compliance_report",
    "report_metadata",
]

monthly = dg.MonthlyPartitionsDefinition(start_date=SIM_START[:8] + "01")
model_versions = dg.DynamicPartitionsDefinition(name="registered_model_versions")


def model_partition_key(name: str, version: str) -> str:
    return f"{name}:v{version}"


def parse_model_partition(key: str) -> tuple[str, str]:
    name, _, version = key.rpartition(":v")
    if not name or not version:
        raise ValueError(f"model partition {key!r} is not NAME:vVERSION")
    return name, version


def _trigger(context: AssetExecutionContext) -> str:
    """What launched this run: its schedule, its sensor, or a person (UI, CLI, backfill)."""
    tags = context.run.tags
    return "schedule" if "dagster/schedule_name" in tags else "sensor" if "dagster/sensor_name" in tags else "dagster"


def report_metadata(issued: Any) -> dict[str, Any]:
    """Links to the issued files (clickable in the Dagster UI) and the record that proves them."""
    meta: dict[str, Any] = {
        "report_id": dg.MetadataValue.text(issued.report_id),
        "report_html": dg.MetadataValue.url(Path(issued.files["html"]["path"]).as_uri()),
        "audit_record": dg.MetadataValue.text(
            f"audit.reports position {issued.record['chain_seq']}, record hash {issued.record['record_hash']}"),
        "verify": dg.MetadataValue.text(f"tracelake report verify {issued.files['html']['path']}"),
    }
    for fmt, f in issued.files.items():
        meta[f"{fmt}_path"] = dg.MetadataValue.path(f["path"])
        meta[f"{fmt}_sha256"] = dg.MetadataValue.text(f["sha256"])
    counts = issued.document.get("counts")
    if counts:
        meta["counts"] = dg.MetadataValue.json(counts)
    meta["summary"] = dg.MetadataValue.md("\n".join(f"- **{k}**: {v}" for k, v in issued.document.get("summary", [])))
    return meta


@dg.asset(partitions_def=monthly, group_name="compliance", kinds={"html", "pdf"},
          description="The month's compliance report (HTML, PDF, JSON), its SHA-256 chained into audit.reports.")
def period_compliance_report(context: AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
    window = context.partition_time_window
    last = (window.end - timedelta(days=1)).date()
    # A scheduled month with no run is still reported (it says so); only a month before any data is refused.
    issued = issue_period(lakehouse.open(), window.start.date().isoformat(), last.isoformat(),
                          trigger=_trigger(context), dagster_run_id=context.run_id, allow_empty=True)
    context.log.info(f"issued period report {issued.report_id}: {issued.html}")
    return dg.MaterializeResult(metadata=report_metadata(issued))


@dg.asset(partitions_def=model_versions, group_name="compliance", kinds={"html", "pdf"},
          description="The dossier of one registered model version (HTML, PDF, JSON), chained into audit.reports.")
def model_compliance_report(context: AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
    name, version = parse_model_partition(context.partition_key)
    issued = issue_model(lakehouse.open(), name, version, trigger=_trigger(context), dagster_run_id=context.run_id)
    context.log.info(f"issued model report {issued.report_id}: {issued.html}")
    return dg.MaterializeResult(metadata=report_metadata(issued))


COMPLIANCE_ASSETS = [period_compliance_report, model_compliance_report]
