"""Point-in-time Spark SQL, reproducing a run's inputs, and history kept readable for years."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from tracelake.jobs.cli import main
from tracelake.lineage import open_lakehouse
from tracelake.lineage.integrity.retention import RetentionError, vacuum, verify_retention
from tracelake.lineage.query.sql import reproduce, reproduce_to, sql_session


def _run(lake, component, partition):
    runs = lake.store.component_runs()
    return runs[(runs["component"] == component) & (runs["partition_key"] == partition)].iloc[0]


def test_every_table_is_registered_by_name_with_time_travel(scenario, spark):
    lake = scenario["lake"]
    session = sql_session(lake)
    rec = _run(lake, "trip_features", "2026-01-13")
    v = int(rec["output_version"])
    count = session.sql(f"SELECT count(*) AS n FROM trip_features VERSION AS OF {v} "
                        "WHERE _tl_partition = '2026-01-13'").collect()[0]["n"]
    assert count == rec["output_rows"]
    # The version before it did not have that partition yet.
    assert session.sql(f"SELECT count(*) AS n FROM trip_features VERSION AS OF {v - 1} "
                       "WHERE _tl_partition = '2026-01-13'").collect()[0]["n"] == 0
    failed_or_skipped = session.sql("SELECT count(*) AS n FROM audit.component_runs WHERE status = 'skipped'").collect()
    assert failed_or_skipped[0]["n"] >= 3
    inputs = session.sql("SELECT input_name, input_version FROM run_inputs WHERE run_id = "
                         f"'{rec['run_id']}'").collect()
    assert [(r["input_name"], r["input_version"]) for r in inputs] == [("cleaned_trips", rec["inputs"][0]["version"])]


def test_timestamp_as_of_in_sql(scenario, spark):
    lake = scenario["lake"]
    session = sql_session(lake)
    retrain = _run(lake, "tip_model", "2026-01-19")
    before = retrain["started_at"].strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = session.sql(f"SELECT DISTINCT model_version FROM tip_predictions TIMESTAMP AS OF '{before}'").collect()
    assert [r["model_version"] for r in rows] == ["1"]


def test_lineage_table_functions_in_sql(scenario, spark):
    lake = scenario["lake"]
    session = sql_session(lake)
    bad = _run(lake, "cleaned_trips", "2026-01-14")["run_id"]
    rows = session.sql("SELECT * FROM tracelake_trace('tip_predictions', \"pickup_date = '2026-01-14'\")").collect()
    assert bad in {r["run_id"] for r in rows}
    impact_rows = session.sql(f"SELECT component, sum(rows) AS rows FROM tracelake_impact('{bad}') "
                              "GROUP BY component").collect()
    assert {r["component"] for r in impact_rows} >= {"trip_features", "tip_predictions", "tip_model"}


def test_reproduce_returns_exactly_what_the_run_read(scenario, spark, tmp_path):
    lake = scenario["lake"]
    rec = _run(lake, "tip_predictions", "2026-01-15")
    inputs = reproduce(lake, rec["run_id"])
    assert inputs["trip_features"].count() == rec["output_rows"]
    assert inputs["model:tip_model"] == "models:/tip_model/1"
    manifest = reproduce_to(lake, rec["run_id"], str(tmp_path / "repro"))
    saved = {i["name"]: i for i in manifest["inputs"]}
    assert saved["trip_features"]["rows"] == rec["output_rows"]
    table = pq.read_table(saved["trip_features"]["file"])
    assert "_tl_run_id" not in table.column_names and table.num_rows == rec["output_rows"]
    assert json.loads((tmp_path / "repro" / "manifest.json").read_text())["run_id"] == rec["run_id"]


def test_every_table_created_keeps_history_for_the_horizon(scenario):
    lake = scenario["lake"]
    results = verify_retention(lake, record=False)
    names = {r.table for r in results}
    assert {"raw_trips", "tip_predictions", "audit.component_runs"} <= names
    for r in results:
        assert r.log_retention == "interval 2555 days" and r.file_retention == "interval 2555 days", r.table
        assert r.ok, (r.table, r.problems)
        assert r.oldest_version == 0


def test_vacuum_refuses_to_shorten_history(scenario):
    lake = scenario["lake"]
    with pytest.raises(RetentionError, match="refusing to vacuum with a 7-day horizon"):
        vacuum(lake, retain_days=7)
    planned = vacuum(lake, table="raw_trips")  # dry run at the horizon: allowed, deletes nothing
    assert planned == [{"table": "raw_trips", "retain_days": 2555.0, "dry_run": True, "files": 0}]
    assert main(["--home", scenario["home"], "vacuum", "--retain-days", "30"]) == 2


def test_retention_verification_catches_a_changed_file_and_a_shortened_property(tmp_path, scenario):
    copy = tmp_path / "copy"
    shutil.copytree(scenario["home"], copy, ignore=shutil.ignore_patterns("mlflow"))
    lake = open_lakehouse(str(copy))
    from tracelake.lineage.record import delta_meta as delta_log

    first_commit = delta_log.read_commit(lake.layout.table("raw_trips"), 0)
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


def _hundreds_of_old_commits(path: Path, retention: str | None, n: int = 300) -> float:
    config = {"delta.logRetentionDuration": retention, "delta.deletedFileRetentionDuration": retention} if retention else None
    for i in range(n):
        write_deltalake(str(path), pa.table({"version_written": [i], "value": [i * 1.5]}), mode="append",
                        configuration=config if i == 0 else None)
    # Pretend the commits happened two years ago, one hour apart (timestamp travel uses these).
    start = time.time() - 2 * 365 * 86400
    for f in (path / "_delta_log").glob("*.json"):
        version = int(f.name[:20])
        os.utime(f, (start + version * 3600, start + version * 3600))
    return start


def test_time_travel_across_hundreds_of_old_versions_survives_log_cleanup(tmp_path, spark):
    kept, default = tmp_path / "kept", tmp_path / "default"
    start = _hundreds_of_old_commits(kept, "interval 2555 days")
    _hundreds_of_old_commits(default, None)
    for path in (kept, default):
        dt = DeltaTable(str(path))
        dt.create_checkpoint()
        dt.cleanup_metadata()  # what a checkpointing writer does: drop log entries past retention
    # Under Delta's defaults the two-year-old versions are gone ...
    assert not (default / "_delta_log" / f"{1:020d}.json").exists()
    with pytest.raises(Exception):
        spark.read.format("delta").option("versionAsOf", 1).load(str(default)).collect()
    # ... with the configured horizon every one of them is still readable, by version and by time.
    assert (kept / "_delta_log" / f"{1:020d}.json").exists()
    for v in (0, 1, 150, 299):
        rows = spark.read.format("delta").option("versionAsOf", v).load(str(kept)).count()
        assert rows == v + 1
    when = pd.Timestamp(start + 10.5 * 3600, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")
    at = spark.read.format("delta").option("timestampAsOf", when).load(str(kept))
    assert at.count() == 11  # version 10 was the newest commit at that time
    assert DeltaTable(str(kept), version=1).to_pyarrow_table().num_rows == 2  # and for delta-rs too
