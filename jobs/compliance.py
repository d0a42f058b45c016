"""Compliance reports on a schedule and on model registration, and in the demo.

- ``monthly_compliance_job`` + its schedule: on the 1st at 07:00, the period report of the
  month that just closed (``period_compliance_report``, monthly partitions);
- ``new_model_version_sensor``: every model version a recorded run registered gets a dynamic
  partition of ``model_compliance_report`` and a run that issues its dossier (run key = the
  partition, so each is issued once; re-materialise the partition to re-issue). A dossier issued
  the day its version is registered has no performance in service yet (labels come later), so
  when version N replaces N-1 the sensor also re-issues N-1's dossier, now covering its whole
  serving life (run key ``<partition>@retired``; the new record names the one it supersedes);
- ``issue_demo_reports``: what the demo calls after each simulated day - it evaluates the same
  sensor and runs what it requests, and materialises the month's period report at a month end;
- ``issue_month_to_date``: what ``tracelake demo`` calls when it stops mid-month - the period
  report of the month so far (the report says the month is not complete yet);
- ``print_report_files``: the demo summary's list of issued reports.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from typing import Any

import dagster as dg

from tracelake.assets.compliance import (
    model_compliance_report,
    model_partition_key,
    model_versions,
    period_compliance_report,
)
from tracelake.lineage import LakehouseResource

__all__ = [
    "COMPLIANCE_JOBS",
    "demo_month_to_date",
    "issue_demo_reports",
    "issue_month_to_date",
    "model_report_job",
    "new_model_version_sensor",
    "period_report_job",
    "period_report_schedule",
    "plan_model_reports",
    "print_report_files",
    "unreported_model_versions",
]

model_report_job = dg.define_asset_job(
    "model_compliance_job", selection=[model_compliance_report], partitions_def=model_versions,
    description="Issue the compliance dossier of one registered model version.",
)
period_report_job = dg.define_asset_job(
    "monthly_compliance_job", selection=[period_compliance_report],
    description="Issue the compliance report of one month.",
)
period_report_schedule = dg.build_schedule_from_partitioned_job(period_report_job, day_of_month=1, hour_of_day=7)

COMPLIANCE_JOBS = [model_report_job, period_report_job]
SCHEDULE_NAME = period_report_schedule.name


RETIRED_SUFFIX = "@retired"


def _registered(lakehouse: LakehouseResource) -> list[tuple[str, str]]:
    from tracelake.monitors.compliance.records import Records

    return [(v["name"], v["version"]) for v in Records(lakehouse.open()).registered_versions()]


def plan_model_reports(versions: list[tuple[str, str]], known: set[str]) -> tuple[list[str], list[dg.RunRequest]]:
    """(new partition keys, run requests) for registered ``versions`` (per model, oldest first)
    given the partitions that already exist.

    Each new version is issued once. A version that a new one replaces is re-issued once, if it
    was issued before: its first dossier was written the day it was registered, before any label
    of the days it scored had arrived. A replaced version that is new itself needs no re-issue -
    its first dossier is written after its serving life ended. Re-issues go first, so the newest
    version's dossier is the model's last materialisation."""
    new: list[str] = []
    reissue: list[dg.RunRequest] = []
    previous: dict[str, str] = {}
    for name, version in versions:
        key = model_partition_key(name, version)
        if key not in known:
            new.append(key)
            before = previous.get(name)
            if before is not None and before in known:
                reissue.append(dg.RunRequest(run_key=f"{before}{RETIRED_SUFFIX}", partition_key=before,
                                             tags={"tracelake/report_reason": f"replaced by {key}"}))
        previous[name] = key
    return new, [*reissue, *(dg.RunRequest(run_key=k, partition_key=k) for k in new)]


def unreported_model_versions(lakehouse: LakehouseResource, known: set[str]) -> list[str]:
    """Partition keys of registered model versions that have no partition yet (oldest first)."""
    return plan_model_reports(_registered(lakehouse), known)[0]


@dg.sensor(job=model_report_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="A new model version registered by a recorded run -> its compliance report, and the "
                       "re-issued report of the version it replaces (now with its whole serving life).")
def new_model_version_sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource) -> dg.SensorResult:
    known = set(context.instance.get_dynamic_partitions(model_versions.name))
    new, requests = plan_model_reports(_registered(lakehouse), known)
    if not new:
        return dg.SensorResult(skip_reason="no model version registered since the last report")
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=[model_versions.build_add_request(new)])


_QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _run(defs: dg.Definitions, job: str, partition: str | None, instance: dg.DagsterInstance,
         tags: dict[str, str] | None) -> str:
    outcome = defs.resolve_job_def(job).execute_in_process(
        partition_key=partition, instance=instance, raise_on_error=False, run_config=_QUIET, tags=tags)
    return "SUCCESS" if outcome.success else "FAILURE"


def issue_demo_reports(defs: dg.Definitions, instance: dg.DagsterInstance, day: date, *,
                       tags: dict[str, str] | None = None) -> dict[str, str]:
    """After a simulated day: evaluate the model-version sensor of ``defs`` and run what it asks
    for, and - when the day ends a month - materialise that month's period report (as the monthly
    schedule would). Returns ``{"job[partition]": "SUCCESS"|"FAILURE"}``."""
    done: dict[str, str] = {}
    try:
        with dg.build_sensor_context(instance=instance,
                                     resources={"lakehouse": (defs.resources or {})["lakehouse"]}) as context:
            result = new_model_version_sensor(context)
        if not isinstance(result, dg.SensorResult):   # Dagster types a sensor's answer loosely; ours is always one
            raise TypeError(f"expected a SensorResult, got {type(result).__name__}")
    except Exception as exc:  # like a failed job: recorded in the day's outcome, the demo goes on
        print(f"tracelake demo: {new_model_version_sensor.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return {new_model_version_sensor.name: "FAILURE"}
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for run in result.run_requests or []:
        done[f"{model_report_job.name}[{run.run_key}]"] = _run(
            defs, model_report_job.name, run.partition_key, instance,
            {**(tags or {}), **run.tags, "dagster/sensor_name": new_model_version_sensor.name})
    if (day + timedelta(days=1)).day == 1:
        month = day.replace(day=1).isoformat()
        done[f"{period_report_job.name}[{month}]"] = _run(defs, period_report_job.name, month, instance,
                                                           {**(tags or {}), "dagster/schedule_name": SCHEDULE_NAME})
    return done


def issue_month_to_date(defs: dg.Definitions, instance: dg.DagsterInstance, last_day: str, *,
                        tags: dict[str, str] | None = None) -> dict[str, str]:
    """The period report of the month the demo stopped in (says "not complete" until the month's
    last day is simulated; a month that ended was reported by ``issue_demo_reports``)."""
    day = date.fromisoformat(last_day)
    if (day + timedelta(days=1)).day == 1:
        return {}
    month = day.replace(day=1).isoformat()
    return {f"{period_report_job.name}[{month}]": _run(defs, period_report_job.name, month, instance, tags)}


def demo_month_to_date(home: str, last_day: str, instance: dg.DagsterInstance | None = None) -> dict[str, str]:
    """``tracelake demo``'s last step: the period report of the month it stopped in, run as the
    code location's job on the demo's Dagster instance (so the UI shows it)."""
    from tracelake.assets.compliance import COMPLIANCE_ASSETS

    from .definitions import CODE_LOCATION_TAGS

    defs = dg.Definitions(assets=COMPLIANCE_ASSETS, jobs=COMPLIANCE_JOBS,
                          resources={"lakehouse": LakehouseResource(home=home)})
    print("tracelake demo: issuing the compliance report of the month so far", file=sys.stderr)
    return issue_month_to_date(defs, instance or dg.DagsterInstance.get(), last_day, tags=CODE_LOCATION_TAGS)


def print_report_files(lake: Any, out=sys.stdout) -> None:
    """The newest issued report of each subject, with its files."""
    from tracelake.monitors.compliance.issue import issued_reports

    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for r in issued_reports(lake):
        newest[(r["kind"], r["subject"])] = r
    if not newest:
        return
    print(f"\nCompliance reports ({len(newest)} subjects; each file's SHA-256 is in audit.reports):", file=out)
    for (kind, subject), r in sorted(newest.items()):
        files = {f["format"]: f["path"] for f in r["files"]}
        print(f"  {kind:6s} {subject:24s} {files.get('html')}", file=out)
        for fmt in ("pdf", "json"):
            if fmt in files:
                print(f"  {'':6s} {'':24s} {files[fmt]}", file=out)
    first = next(iter(sorted(newest.values(), key=lambda r: r["issued_at"])))
    html = next(f["path"] for f in first["files"] if f["format"] == "html")
    print(f"  check one: .venv/bin/tracelake report verify {html}", file=out)
