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


def test_a_new_demo_sets_aside_the_anchors_of_a_lakehouse_deleted_at_its_path(tmp_path, monkeypatch, capsys):
    # A re-cloned checkout: ./lakehouse was deleted with the old clone, its signed heads were not,
    # and the new demo's verify reported "anchored position ... is gone (records deleted)".
    from tracelake.jobs.demo import set_aside_stale_anchors
    from tracelake.lineage.record.anchors import anchor_store

    monkeypatch.setenv("TRACELAKE_ANCHOR_DIR", str(tmp_path / "anchors"))
    home = str(tmp_path / "lakehouse")
    store = anchor_store(home)
    store.note("component_runs", "j1", 136, "ab" * 32)
    old = store.path.read_text()
    set_aside_stale_anchors(home)
    assert not store.path.exists() and list(anchor_store(home).anchors()) == []
    kept = [p for p in (tmp_path / "anchors").iterdir() if ".retired-" in p.name]
    assert [p.read_text() for p in kept] == [old]                     # kept, never removed
    assert f"set aside in {kept[0]}" in capsys.readouterr().err
    set_aside_stale_anchors(home)                                      # nothing left: nothing said
    assert capsys.readouterr().err == ""
