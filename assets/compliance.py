"""The platform's compliance reports as Dagster assets of the reference pipeline's code location.

- ``period_compliance_report`` (monthly partitions): the period report of the month - models
  served, runs and outcomes, failed tests, alerts, drift, retention - issued and recorded.
- ``model_compliance_report`` (one dynamic partition per registered model version, added by the
  sensor in ``jobs/compliance.py``): the model version's dossier, issued and recorded.

Each materialisation's metadata links the issued files (HTML, PDF, JSON) with their SHA-256 and
the ``audit.reports`` record, so the Dagster UI leads to the reports. The link is an http URL
under ``TRACELAKE_REPORTS_BASE`` (default ``http://127.0.0.1:3030/reports``: what ``tracelake ui``
serves ``<home>/reports`` at, ``jobs/docs_server.py``) - a browser refuses ``file://`` links from
an http page. The builders live in ``tracelake.monitors.compliance`` and know no particular
pipeline; only the partitions are ours.
"""


import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
from dagster import AssetExecutionContext

from tracelake.lineage import LakehouseResource
from tracelake.monitors.compliance.cli import issue_model, issue_period

from .partitions import SIM_START

__all__ = [
    "COMPLIANCE_ASSETS",
    "DEFAULT_REPORTS_BASE",
    "model_compliance_report",
    "model_partition_key",
    "model_versions",
    "monthly",
    "parse_model_partition",
    "period_compliance_report",
    "report_metadata",
    "report_url",
    "reports_base",
]

DEFAULT_REPORTS_BASE = "http://127.0.0.1:3030/reports"

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


def reports_base() -> str:
    """Where ``<home>/reports`` is served over http. Read when a report is issued, not at import, so
    the code location follows the environment it runs in (``tracelake ui`` sets it to its server)."""
    return (os.environ.get("TRACELAKE_REPORTS_BASE") or DEFAULT_REPORTS_BASE).rstrip("/")


def report_url(path: str, reports_root: str | Path | None) -> str | None:
    """The http URL of a file under ``reports_root``; None for a file elsewhere (``--out``, or a
    lakehouse on object storage), which no server of ours publishes."""
    if reports_root is None:
        return None
    try:
        relative = Path(path).resolve().relative_to(Path(reports_root).resolve())
    except ValueError:
        return None
    return f"{reports_base()}/{quote(relative.as_posix())}"


def _reports_root(lake: Any) -> Path | None:
    layout = lake.layout
    return Path(layout.local_path(layout.reports_root)) if layout.is_local else None


def report_metadata(issued: Any, reports_root: str | Path | None = None) -> dict[str, Any]:
    """Links to the issued files (clickable in the Dagster UI) and the record that proves them.

    ``report_html`` is an http URL when the file is under ``reports_root`` (see ``report_url``),
    else the plain path; ``<fmt>_path`` always names the file on disk."""
    html_path = issued.files["html"]["path"]
    url = report_url(html_path, reports_root)
    meta: dict[str, Any] = {
        "report_id": dg.MetadataValue.text(issued.report_id),
        "report_html": dg.MetadataValue.url(url) if url else dg.MetadataValue.path(html_path),
        "audit_record": dg.MetadataValue.text(
            f"audit.reports position {issued.record['chain_seq']}, record hash {issued.record['record_hash']}"),
        "verify": dg.MetadataValue.text(f"tracelake report verify {html_path}"),
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
    lake = lakehouse.open()
    issued = issue_period(lake, window.start.date().isoformat(), last.isoformat(),
                          trigger=_trigger(context), dagster_run_id=context.run_id, allow_empty=True)
    context.log.info(f"issued period report {issued.report_id}: {issued.html}")
    return dg.MaterializeResult(metadata=report_metadata(issued, _reports_root(lake)))


@dg.asset(partitions_def=model_versions, group_name="compliance", kinds={"html", "pdf"},
          description="The dossier of one registered model version (HTML, PDF, JSON), chained into audit.reports.")
def model_compliance_report(context: AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
    name, version = parse_model_partition(context.partition_key)
    lake = lakehouse.open()
    issued = issue_model(lake, name, version, trigger=_trigger(context), dagster_run_id=context.run_id)
    context.log.info(f"issued model report {issued.report_id}: {issued.html}")
    return dg.MaterializeResult(metadata=report_metadata(issued, _reports_root(lake)))


COMPLIANCE_ASSETS = [period_compliance_report, model_compliance_report]
