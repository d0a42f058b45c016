"""The tables a run writes besides its output are outputs of its OpenLineage event too: rows a
quarantining test set aside (``<table>__quarantine``, on COMPLETE) and a batch a blocking test
refused (``<table>__rejected``, on FAIL - a rejected batch fails the run). Toy components on real
Dagster, Spark + Delta, published live to a real HTTP backend on 127.0.0.1 and exported from the
record; every dataset is checked against the ``component_runs`` record and the Delta log."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
from deltalake import DeltaTable

from tracelake.jobs.cli import main
from tracelake.lineage import DeltaIOManager, LakehouseResource, MlflowResource, SparkResource, component, open_lakehouse
from tracelake.lineage.openlineage.naming import dataset_id
from tracelake.lineage.record import delta_meta
from tracelake.monitors.checks import Expression, Schema

days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-05")
BAD_ROWS = {"2026-01-01": 0, "2026-01-02": 2}      # the first day quarantines nothing, the second two rows


@component(partitions_def=days, checks=[Expression("value_small", "value < 100", quarantine=True, max_fail_rate=0.9)])
def sensor(context: dg.AssetExecutionContext) -> pd.DataFrame:
    bad = BAD_ROWS[context.partition_key]
    return pd.DataFrame({"key": [f"{context.partition_key}-{i}" for i in range(6)],
                         "value": [1000 + i if i < bad else i for i in range(6)]})


@component(partitions_def=days, checks=[Schema({"key": "string", "amount": "double"}, blocking=True)])
def gated(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"key": ["a", "b", "c"], "value": [1, 2, 3]})     # not the declared schema: rejected


def _materialize(home: str, partition: str) -> None:
    lakehouse = LakehouseResource(home=home, spark=SparkResource(home=home), mlflow=MlflowResource(home=home))
    dg.materialize([sensor, gated], partition_key=partition, raise_on_error=False,
                   resources={"lakehouse": lakehouse, "delta_io_manager": DeltaIOManager(lakehouse=lakehouse)})


def _side_output(lake, end: dict, rec: dict, side: str, rows_field: str) -> dict:
    """The ``side`` table (quarantine / rejected) of ``end``'s outputs, checked against the record."""
    table, version, rows = rec[f"{side}_table"], int(rec[f"{side}_version"]), int(rec[rows_field])
    assert table == f"{rec['output_table']}__{side}" and rows > 0
    path = lake.layout.table(table)
    # The record's version is the commit of this run in that table's log, holding those rows.
    commit = delta_meta.read_commit(path, version)
    assert commit.run_id == rec["run_id"] and commit.rows_added == rows
    assert len(DeltaTable(path, version=version).to_pandas()) >= rows
    namespace, name = dataset_id(path)
    matches = [d for d in end["outputs"] if (d["namespace"], d["name"]) == (namespace, name)]
    assert len(matches) == 1, (side, [d["name"] for d in end["outputs"]])
    (out,) = matches
    assert out["facets"]["version"]["datasetVersion"] == str(version)
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == rows
    # The schema of that version of the side table, from its log (the main output's comes from the record).
    logged = [f["name"] for f in json.loads(delta_meta.schema_at(path, version))["fields"]]
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == logged
    # the rows as each side keeps them: set-aside rows as they were, a refused batch as JSON text
    assert ({"key", "value"} if side == "quarantine" else {"row_json"}) <= set(logged)
    return out


def test_quarantine_and_rejected_tables_are_outputs_at_their_recorded_versions(
        tmp_path, home, spark, backend, point_to, records_match):
    point_to(backend.url)
    for day in BAD_ROWS:
        _materialize(home, day)
    lake = open_lakehouse(home)
    assert lake.listeners[0].flush(60)
    by_run = records_match(lake, backend.events)      # main outputs, inputs, checks, statuses
    runs = lake.store.component_runs()
    rec = {(r["component"], r["partition_key"]): r for r in runs.to_dict("records")}
    main_path = dataset_id(lake.layout.table("sensor"))

    # A day with nothing to set aside: no quarantine commit, so no quarantine dataset.
    clean = rec["sensor", "2026-01-01"]
    assert clean["status"] == "succeeded" and pd.isna(clean["quarantine_version"])
    assert [(d["namespace"], d["name"]) for d in by_run[clean["run_id"]]["COMPLETE"]["outputs"]] == [main_path]

    # Two rows set aside: COMPLETE lists the table and its quarantine, each at its own version.
    quarantined = rec["sensor", "2026-01-02"]
    assert quarantined["status"] == "succeeded" and quarantined["quarantined_rows"] == BAD_ROWS["2026-01-02"]
    complete = by_run[quarantined["run_id"]]["COMPLETE"]
    side = _side_output(lake, complete, quarantined, "quarantine", "quarantined_rows")
    assert int(quarantined["quarantine_version"]) != int(quarantined["output_version"])   # not the main version
    assert {(d["namespace"], d["name"]) for d in complete["outputs"]} == {main_path, (side["namespace"], side["name"])}

    # A blocking test refused the batch each day: FAIL, no version of the table, the rejected
    # table at the version this run committed (the second day's is not the first day's).
    rejected_versions = []
    for day in BAD_ROWS:
        refused = rec["gated", day]
        assert refused["status"] == "failed" and pd.isna(refused["output_version"])
        fail = by_run[refused["run_id"]]["FAIL"]
        kept = _side_output(lake, fail, refused, "rejected", "rejected_rows")
        (main_out,) = [d for d in fail["outputs"] if d["name"] == dataset_id(lake.layout.table("gated"))[1]]
        assert "version" not in main_out["facets"] and kept is not main_out
        rejected_versions.append(kept["facets"]["version"]["datasetVersion"])
    assert len(set(rejected_versions)) == 2

    # Export replays the same outputs from the record.
    exported = tmp_path / "exported.jsonl"
    assert main(["--home", home, "openlineage", "export", "--out", str(exported)]) == 0
    replayed = {(e["run"]["runId"], e["eventType"]): e for e in map(json.loads, exported.read_text().splitlines())}
    for e in backend.events:
        if e["eventType"] != "START":
            assert replayed[e["run"]["runId"], e["eventType"]]["outputs"] == e["outputs"]
