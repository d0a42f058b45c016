"""Point-in-time Spark SQL, reproducing a run's inputs, and history kept readable for years - on
the ETL-bug scenario (first model 2026-01-12, retrain 2026-01-19)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from tracelake.jobs.cli import main
from tracelake.jobs.maintenance import retention_verification_job
from tracelake.lineage import LakehouseResource, open_lakehouse
from tracelake.lineage.integrity.retention import RetentionError, vacuum, verify_retention
from tracelake.lineage.query.sql import reproduce, reproduce_to, sql_session
from tracelake.lineage.record import delta_meta


def test_every_table_is_registered_by_name_with_time_travel(etl_bug_scenario, record_of, spark):
    lake = etl_bug_scenario.lake
    session = sql_session(lake)
    rec = record_of(lake, "trip_features", "2026-01-13")
    v = int(rec["output_version"])
    count = session.sql(f"SELECT count(*) AS n FROM trip_features VERSION AS OF {v} "
                        "WHERE _tl_partition = '2026-01-13'").collect()[0]["n"]
    assert count == rec["output_rows"]
    # The version before it did not have that partition yet.
    assert session.sql(f"SELECT count(*) AS n FROM trip_features VERSION AS OF {v - 1} "
                       "WHERE _tl_partition = '2026-01-13'").collect()[0]["n"] == 0
    by_status = {r["status"]: r["n"] for r in session.sql(
        "SELECT status, count(*) AS n FROM audit.component_runs GROUP BY status").collect()}
    assert by_status == lake.store.component_runs(include_open=False)["status"].value_counts().to_dict()
    inputs = session.sql("SELECT input_name, input_version FROM run_inputs WHERE run_id = "
                         f"'{rec['run_id']}'").collect()
    assert [(r["input_name"], r["input_version"]) for r in inputs] == [("cleaned_trips", rec["inputs"][0]["version"])]


def test_timestamp_as_of_in_sql(etl_bug_scenario, record_of, spark):
    lake = etl_bug_scenario.lake
    session = sql_session(lake)
    retrain = record_of(lake, "tip_model", "2026-01-19")
    first = record_of(lake, "tip_model", "2026-01-12")
    (model,) = [m for m in first["models"] if m["role"] == "registered"]
    before = retrain["started_at"].strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = session.sql(f"SELECT DISTINCT model_version FROM tip_predictions TIMESTAMP AS OF '{before}'").collect()
    assert [r["model_version"] for r in rows] == [str(model["version"])]


def test_lineage_table_functions_in_sql(etl_bug_scenario, record_of, spark):
    lake = etl_bug_scenario.lake
    session = sql_session(lake)
    bad = record_of(lake, "cleaned_trips", "2026-01-14")["run_id"]
    rows = session.sql("SELECT * FROM tracelake_trace('tip_predictions', \"pickup_date = '2026-01-14'\")").collect()
    assert bad in {r["run_id"] for r in rows}
    impact_rows = session.sql(f"SELECT component, sum(rows) AS rows FROM tracelake_impact('{bad}') "
                              "GROUP BY component").collect()
    assert {r["component"] for r in impact_rows} >= {"trip_features", "tip_predictions", "tip_model"}


def test_reproduce_returns_exactly_what_the_run_read(etl_bug_scenario, record_of, spark, tmp_path):
    lake = etl_bug_scenario.lake
    rec = record_of(lake, "tip_predictions", "2026-01-15")
    (model_input,) = [i for i in rec["inputs"] if i["kind"] == "model"]
    inputs = reproduce(lake, rec["run_id"])
    assert inputs["trip_features"].count() == rec["output_rows"]
    assert inputs["model:tip_model"] == f"models:/tip_model/{model_input['model_version']}"
    manifest = reproduce_to(lake, rec["run_id"], str(tmp_path / "repro"))
    saved = {i["name"]: i for i in manifest["inputs"]}
    assert saved["trip_features"]["rows"] == rec["output_rows"]
    table = pq.read_table(saved["trip_features"]["file"])
    assert "_tl_run_id" not in table.column_names and table.num_rows == rec["output_rows"]
    assert json.loads((tmp_path / "repro" / "manifest.json").read_text())["run_id"] == rec["run_id"]


def test_every_table_created_keeps_history_for_the_horizon(etl_bug_scenario):
    results = verify_retention(etl_bug_scenario.lake, record=False)
    names = {r.table for r in results}
    assert {"raw_trips", "tip_predictions", "audit.component_runs"} <= names
    for r in results:
        assert r.log_retention == "interval 2555 days" and r.file_retention == "interval 2555 days", r.table
        assert r.ok, (r.table, r.problems)
        assert r.oldest_version == 0


def test_vacuum_refuses_to_shorten_history(etl_bug_scenario):
    lake = etl_bug_scenario.lake
    with pytest.raises(RetentionError, match="refusing to vacuum with a 7-day horizon"):
        vacuum(lake, retain_days=7)
    planned = vacuum(lake, table="raw_trips")  # dry run at the horizon: allowed, deletes nothing
    assert planned == [{"table": "raw_trips", "retain_days": 2555.0, "dry_run": True, "files": 0}]
    assert main(["--home", etl_bug_scenario.home, "vacuum", "--retain-days", "30"]) == 2


def test_retention_verification_catches_a_changed_file_and_a_shortened_property(etl_bug_scenario, tmp_path):
    copy = tmp_path / "copy"
    lake = open_lakehouse(etl_bug_scenario.copy(copy))
    first_commit = delta_meta.read_commit(lake.layout.table("raw_trips"), 0)
    oldest = copy / "tables" / "raw_trips" / first_commit.adds[0]["path"]
    data = pq.read_table(oldest)
    pq.write_table(data.slice(0, data.num_rows - 1), oldest)  # someone "fixes" old raw data in place
    DeltaTable(lake.layout.table("cleaned_trips")).alter.set_table_properties(
        {"delta.deletedFileRetentionDuration": "interval 7 days"})
    results = {r.table: r for r in verify_retention(lake, record=True)}
    assert any("files differ from the digest" in p for p in results["raw_trips"].problems)
    assert any("removed-file retention is interval 7 days" in p for p in results["cleaned_trips"].problems)
    with pytest.raises(RetentionError, match="refusing to vacuum cleaned_trips"):
        vacuum(lake, table="cleaned_trips")
    assert main(["--home", str(copy), "retention", "verify"]) == 1


def test_retention_job_fails_loudly_when_history_cannot_be_proven(etl_bug_scenario, tmp_path):
    copy = etl_bug_scenario.copy(tmp_path / "copy")
    resources = {"lakehouse": LakehouseResource(home=copy)}
    assert retention_verification_job.execute_in_process(resources=resources).success
    DeltaTable(str(tmp_path / "copy" / "tables" / "trip_labels")).alter.set_table_properties(
        {"delta.logRetentionDuration": "interval 30 days"})
    result = retention_verification_job.execute_in_process(resources=resources, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("verify_retained_history")
    assert "trip_labels" in failure.user_failure_data.description
