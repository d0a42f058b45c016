"""Audit maintenance as a scheduled Dagster job: reconcile dead runs, flush and compact."""

import dagster as dg

from tracelake.lineage import LakehouseResource
from tracelake.lineage.record.dagster_runs import DagsterRuns
from tracelake.lineage.record.reconcile import reconcile_dagster, reconcile_mlflow, reconcile_open_runs
from tracelake.monitors.alerts.channels import AlertChannelsResource
from tracelake.monitors.alerts.manager import AlertManager

__all__ = ["audit_maintenance_job", "audit_maintenance_schedule", "retention_verification_job",
           "retention_verification_schedule"]


@dg.op(description="Record runs whose process died as abandoned, and finish their MLflow runs.")
def reconcile_runs(context: dg.OpExecutionContext, lakehouse: LakehouseResource) -> int:
    lake = lakehouse.open()
    dagster_runs = DagsterRuns(context.instance)
    results = reconcile_open_runs(lake, dagster_run_in_progress=dagster_runs.in_progress, min_age_s=60,
                                  on_abandoned=dagster_runs.mark_failed)
    results += reconcile_dagster(lake, dagster_runs)
    results += reconcile_mlflow(lake)
    for r in results:
        if r.action != "still-running":
            context.log.warning(f"{r.component} run {r.run_id}: {r.action} ({r.detail})")
    return sum(r.action == "abandoned" for r in results)

@dg.op(description="Retry alert pages whose delivery failed and whose retry time has come (hourly, so a "
                   "page waits at most an hour for a channel that came back).")
def retry_alert_deliveries(context: dg.OpExecutionContext, lakehouse: LakehouseResource,
                           alert_channels: AlertChannelsResource) -> int:
    report = AlertManager(lakehouse.open(), alert_channels.configure().channels).deliver_pending()
    for entry, reason in report.failed.items():
        context.log.warning(f"alert delivery {entry} failed again: {reason}")
    return len(report.delivered)


@dg.op(description="Write the journal to the Delta audit tables, then compact and checkpoint them.")
def flush_and_compact(context: dg.OpExecutionContext, lakehouse: LakehouseResource, abandoned: int,
                      delivered: int) -> None:
    lake = lakehouse.open()
    written = lake.flush()
    for table in lake.store.tables():
        lake.store.compact(table)
    context.add_output_metadata({"flushed": sum(written.values()), "abandoned": abandoned,
                                 "alert_pages_delivered": delivered})

@dg.job(description="Hourly: reconcile abandoned runs, retry undelivered alert pages, flush the audit journal, "
                    "compact audit tables.")
def audit_maintenance_job():
    flush_and_compact(reconcile_runs(), retry_alert_deliveries())

audit_maintenance_schedule = dg.ScheduleDefinition(job=audit_maintenance_job, cron_schedule="17 * * * *")


@dg.op(description="Read the oldest retained version of every table and compare it with the audit record.")
def verify_retained_history(context: dg.OpExecutionContext, lakehouse: LakehouseResource) -> None:
    from tracelake.lineage.integrity.retention import verify_retention

    results = verify_retention(lakehouse.open())
    bad = [r for r in results if not r.ok]
    context.add_output_metadata({
        "tables_checked": len(results),
        "tables_with_gaps": len(bad),
        "problems": dg.MetadataValue.md("\n".join(f"- **{r.table}**: {'; '.join(r.problems)}" for r in bad) or "none"),
    })
    if bad:
        raise dg.Failure(
            description=f"{len(bad)} table(s) cannot prove their oldest history: "
                        + "; ".join(f"{r.table}: {r.problems[0]}" for r in bad[:5]),
            metadata={"tables": [r.table for r in bad]},
        )


@dg.job(description="Daily: prove the oldest retained version of every table is readable and matches the audit.")
def retention_verification_job():
    verify_retained_history()


retention_verification_schedule = dg.ScheduleDefinition(job=retention_verification_job, cron_schedule="40 4 * * *")
