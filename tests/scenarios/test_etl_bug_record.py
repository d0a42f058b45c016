"""What must hold of the record after the ETL-bug scenario (2026-01-05 .. 2026-01-19, fares in
cents on the 14th): one record per materialisation, every view agreeing, outputs that exist and
read back, models linked both ways through MLflow, and the monitors seeing the bug."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from deltalake import DeltaTable
from mlflow import MlflowClient

from tracelake.assets import PIPELINE_ASSETS
from tracelake.jobs.cli import main
from tracelake.lineage import CHECK_RESULTS, RUN_ID_COLUMN
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.monitors.metrics.history import import_mlflow_metrics

BUG_DAY = "2026-01-14"


def _materialisations(instance: dg.DagsterInstance):
    out = []
    for asset in PIPELINE_ASSETS:
        for key in asset.keys:
            result = instance.fetch_materializations(key, limit=10_000)
            out += [(key.to_user_string(), r.asset_materialization) for r in result.records]
    return out


def test_every_materialisation_has_exactly_one_succeeded_record(etl_bug_scenario):
    runs = etl_bug_scenario.lake.store.component_runs()
    succeeded = runs[runs["status"] == "succeeded"]
    mats = _materialisations(etl_bug_scenario.instance)
    assert len(mats) == len(succeeded) > 60
    ids = [m.metadata["tracelake_run_id"].value for _, m in mats]
    assert sorted(ids) == sorted(succeeded["run_id"])
    for asset, mat in mats:
        rec = succeeded.set_index("run_id").loc[mat.metadata["tracelake_run_id"].value]
        assert rec["component"] == asset and rec["partition_key"] == mat.partition
        assert mat.metadata["delta_version"].value == rec["output_version"]
        assert mat.tags["dagster/data_version"] == f"v{rec['output_version']}"


def test_recorded_outputs_exist_and_their_commits_name_the_run(etl_bug_scenario):
    report = verify_lakehouse(etl_bug_scenario.lake)
    assert report.ok, report.problems
    assert report.checked_runs > 60


def test_every_recorded_version_reads_back_with_an_independent_reader(etl_bug_scenario):
    lake = etl_bug_scenario.lake
    runs = lake.store.component_runs()
    for rec in runs[runs["status"] == "succeeded"].to_dict("records"):
        path = lake.layout.table(rec["output_table"])
        data = DeltaTable(path, version=rec["output_version"]).to_pyarrow_table(columns=[RUN_ID_COLUMN])
        assert data.column(RUN_ID_COLUMN).to_pylist().count(rec["run_id"]) == rec["output_rows"]


def test_predictions_reach_the_model_and_its_training_set_through_mlflow(etl_bug_scenario):
    lake = etl_bug_scenario.lake
    lake.flush()
    runs = lake.store.component_runs().set_index("run_id", drop=False)
    client = MlflowClient(tracking_uri=lake.mlflow.tracking_uri)
    trainings = runs[(runs["component"] == "tip_model") & (runs["status"] == "succeeded")]
    assert len(trainings) == 2
    registered = {}
    for rec in trainings.to_dict("records"):
        (model,) = [m for m in rec["models"] if m["role"] == "registered"]
        version = client.get_model_version(model["name"], model["version"])
        assert version.run_id == rec["mlflow_run_id"]  # registered from the component's own MLflow run
        (inp,) = rec["inputs"]
        assert inp["name"] == "training_set"
        # The registry page says what the version learned from and which run trained it.
        assert version.tags["tracelake.training_data"] == f"training_set@v{inp['version']}"
        assert version.tags["tracelake.run_id"] == rec["run_id"]
        assert rec["run_id"] in version.description and f"training_set@v{inp['version']}" in version.description
        registered[model["version"]] = rec
    preds = runs[(runs["component"] == "tip_predictions") & (runs["status"] == "succeeded")]
    assert len(preds) == 8  # 2026-01-12 .. 2026-01-19
    for rec in preds.to_dict("records"):
        (model_input,) = [i for i in rec["inputs"] if i["kind"] == "model"]
        training = registered[model_input["model_version"]]
        assert model_input["mlflow_run_id"] == training["mlflow_run_id"]
        assert training["started_at"] < rec["started_at"]
    retrained = next(v for v, r in registered.items() if r["partition_key"] == "2026-01-19")
    late = preds[preds["partition_key"] >= "2026-01-19"]
    assert {next(i["model_version"] for i in r["inputs"] if i["kind"] == "model")
            for r in late.to_dict("records")} == {retrained}


def test_the_bug_is_in_the_data_on_its_day_only(etl_bug_scenario):
    cleaned = DeltaTable(etl_bug_scenario.lake.layout.table("cleaned_trips")).to_pandas(
        columns=["_tl_partition", "fare_amount"])
    means = cleaned.groupby("_tl_partition")["fare_amount"].mean()
    assert means[BUG_DAY] > 50 * means["2026-01-13"]
    assert means.drop(BUG_DAY).max() < 3 * means.drop(BUG_DAY).min()


def test_training_set_reads_exactly_the_two_previous_weeks(etl_bug_scenario, record_of):
    rec = record_of(etl_bug_scenario.lake, "training_set", "2026-01-19")
    features = next(i for i in rec["inputs"] if i["name"] == "trip_features")
    assert next(iter(features["partitions"])) == "2026-01-05" and list(features["partitions"])[-1] == "2026-01-18"
    assert not features["missing_partitions"]


def test_the_etl_bug_fails_the_fare_range_test_on_that_day_only(etl_bug_scenario):
    checks = etl_bug_scenario.lake.store.read(CHECK_RESULTS)
    rng = checks[(checks["component"] == "cleaned_trips") & (checks["check_name"] == "fare_amount_range")]
    rng = rng.set_index("partition_key")
    assert not rng.loc[BUG_DAY, "passed"] and rng.loc[BUG_DAY, "observed_value"] > 0.9
    assert rng.drop(index=BUG_DAY)["passed"].all()
    assert rng.loc[BUG_DAY, "threshold_value"] == 0.01


def test_quarantine_keeps_every_row(etl_bug_scenario):
    lake = etl_bug_scenario.lake
    raw = DeltaTable(lake.layout.table("raw_trips")).to_pandas(columns=["_tl_partition"])["_tl_partition"].value_counts()
    kept = DeltaTable(lake.layout.table("cleaned_trips")).to_pandas(columns=["_tl_partition"])["_tl_partition"].value_counts()
    q = DeltaTable(lake.layout.table("cleaned_trips__quarantine")).to_pandas(columns=["_tl_partition", "_tl_violations"])
    quarantined = q["_tl_partition"].value_counts()
    assert quarantined.sum() > 0
    for day, n in kept.items():
        assert raw[day] == n + quarantined.get(day, 0), day
    assert {r for v in q["_tl_violations"] for r in v} <= {"positive_distance", "positive_duration", "positive_fare",
                                                          "passenger_count_not_null"}


def test_sla_results_are_asset_checks_in_dagster(etl_bug_scenario):
    records = etl_bug_scenario.instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION), limit=10_000)
    names = {r.event_log_entry.dagster_event.event_specific_data.check_name for r in records}
    assert {"sla_tip_recall", "sla_predictions_ready", "sla_etl_volume", "schema", "fare_amount_range"} <= names


def test_mlflow_metrics_import_into_history_once(etl_bug_scenario, tmp_path):
    from tracelake.lineage import open_lakehouse

    lake = open_lakehouse(etl_bug_scenario.copy(tmp_path / "lake"))  # the import writes metric records
    first = import_mlflow_metrics(lake, "tracelake/tip_model", component="tip_model")
    assert first >= 2 * 7  # two training runs, seven metrics each
    assert import_mlflow_metrics(lake, "tracelake/tip_model", component="tip_model") == 0


def test_cli_lists_shows_and_verifies(etl_bug_scenario, capsys):
    home = etl_bug_scenario.home
    assert main(["--home", home, "runs", "--component", "tip_model", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["partition_key"] for r in runs] == ["2026-01-19", "2026-01-12"]
    assert main(["--home", home, "run", "show", runs[0]["run_id"]]) == 0
    shown = capsys.readouterr().out
    assert "training_set@v" in shown and "registered tip_model v" in shown and "val_auc=" in shown
    assert main(["--home", home, "audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("OK:")
    assert main(["--home", home, "checks", "--component", "cleaned_trips", "--failed", "--json"]) == 0
    failed = json.loads(capsys.readouterr().out)
    assert any(c["check_name"] == "fare_amount_range" and c["partition_key"] == BUG_DAY for c in failed)
    assert main(["--home", home, "metrics", "tip_predictions", "--metric", "recall", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) >= 5
    assert main(["--home", home, "metrics", "tip_predictions", "--metric", "nope"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["run", "show", "01M89FZ4TYSEB82KNH1VRH01SK"], "no component run 01M89FZ4TYSEB82KNH1VRH01SK"),
    (["run", "show", "nonsense"], "not a Tracelake run id"),
    (["runs", "--component", "nope"], "no runs of component 'nope'"),
    (["runs", "--since", "yesterday"], "is not a date or time"),
])
def test_cli_bad_input_is_one_clear_line_and_exit_2(etl_bug_scenario, capsys, argv, message):
    assert main(["--home", etl_bug_scenario.home, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
