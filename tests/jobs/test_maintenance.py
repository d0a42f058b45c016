"""The scheduled maintenance jobs, executed in process against real lakehouses."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

from deltalake import DeltaTable

from tracelake.jobs.maintenance import audit_maintenance_job, retention_verification_job
from tracelake.lineage import COMPONENT_RUNS, LakehouseResource, MlflowResource, open_lakehouse
from tracelake.lineage.record.runid import new_run_id


def test_audit_maintenance_abandons_dead_runs_flushes_and_compacts(home, spark):
    lake = open_lakehouse(home)
    row = {"run_id": new_run_id(now_ms=1_700_000_000_000), "component": "ghost", "status": "started",
           "started_at": datetime(2023, 11, 14, tzinfo=timezone.utc), "dagster_run_id": "no-such-run"}
    lake.journal.open_run(row["run_id"], row)
    with lake.journal._tx() as tx:  # the process that opened it is long gone
        tx.execute("UPDATE open_runs SET pid=999999, started_at=0 WHERE run_id=?", (row["run_id"],))
    result = audit_maintenance_job.execute_in_process(
        resources={"lakehouse": LakehouseResource(home=home, mlflow=MlflowResource(home=home))})
    assert result.success
    runs = lake.store.component_runs()
    assert list(runs["status"]) == ["abandoned"] and not lake.journal.open_runs()
    assert DeltaTable(lake.store.path(COMPONENT_RUNS)).to_pyarrow_table().num_rows == 1  # flushed


def test_retention_job_fails_loudly_when_history_cannot_be_proven(tmp_path, scenario):
    copy = tmp_path / "copy"
    shutil.copytree(scenario["home"], copy, ignore=shutil.ignore_patterns("mlflow"))
    resources = {"lakehouse": LakehouseResource(home=str(copy))}
    assert retention_verification_job.execute_in_process(resources=resources).success
    DeltaTable(str(copy / "tables" / "trip_labels")).alter.set_table_properties(
        {"delta.logRetentionDuration": "interval 30 days"})
    result = retention_verification_job.execute_in_process(resources=resources, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("verify_retained_history")
    assert "trip_labels" in failure.user_failure_data.description
