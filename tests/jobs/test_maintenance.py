"""The scheduled maintenance jobs, executed in process against real lakehouses."""

from __future__ import annotations

from datetime import UTC, datetime

from deltalake import DeltaTable

from tracelake.jobs.maintenance import audit_maintenance_job
from tracelake.lineage import COMPONENT_RUNS, LakehouseResource, MlflowResource, open_lakehouse
from tracelake.lineage.record.runid import new_run_id
from tracelake.monitors.alerts.channels import AlertChannelsResource


def test_audit_maintenance_abandons_dead_runs_flushes_and_compacts(home, spark):
    lake = open_lakehouse(home)
    row = {"run_id": new_run_id(now_ms=1_700_000_000_000), "component": "ghost", "status": "started",
           "started_at": datetime(2023, 11, 14, tzinfo=UTC), "dagster_run_id": "no-such-run"}
    lake.journal.open_run(row["run_id"], row)
    with lake.journal._tx() as tx:  # the process that opened it is long gone
        tx.execute("UPDATE open_runs SET pid=999999, started_at=0 WHERE run_id=?", (row["run_id"],))
    result = audit_maintenance_job.execute_in_process(
        resources={"lakehouse": LakehouseResource(home=home, mlflow=MlflowResource(home=home)),
                   "alert_channels": AlertChannelsResource()})
    assert result.success
    runs = lake.store.component_runs()
    assert list(runs["status"]) == ["abandoned"] and not lake.journal.open_runs()
    assert DeltaTable(lake.store.path(COMPONENT_RUNS)).to_pyarrow_table().num_rows == 1  # flushed
