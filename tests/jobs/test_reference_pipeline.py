"""End to end: the reference pipeline over simulated days with injected faults, then what must
hold of what was recorded (the foundation issue's acceptance checks)."""

from __future__ import annotations


import dagster as dg
from deltalake import DeltaTable
from mlflow import MlflowClient

from tracelake.assets import PIPELINE_ASSETS
from tracelake.lineage import RUN_ID_COLUMN
from tracelake.lineage.integrity.verify import verify_lakehouse


def _materialisations(instance: dg.DagsterInstance):
    out = []
    for asset in PIPELINE_ASSETS:
        for key in asset.keys:
            result = instance.fetch_materializations(key, limit=10_000)
            out += [(key.to_user_string(), r.asset_materialization) for r in result.records]
    return out


def test_every_materialisation_has_exactly_one_succeeded_record(scenario):
    runs = scenario["lake"].store.component_runs()
    succeeded = runs[runs["status"] == "succeeded"]
    mats = _materialisations(scenario["instance"])
    assert len(mats) == len(succeeded) > 60
    ids = [m.metadata["tracelake_run_id"].value for _, m in mats]
    assert sorted(ids) == sorted(succeeded["run_id"])
    for asset, mat in mats:
        rec = succeeded.set_index("run_id").loc[mat.metadata["tracelake_run_id"].value]
        assert rec["component"] == asset and rec["partition_key"] == mat.partition
        assert mat.metadata["delta_version"].value == rec["output_version"]
        assert mat.tags["dagster/data_version"] == f"v{rec['output_version']}"


def test_recorded_outputs_exist_and_their_commits_name_the_run(scenario):
    report = verify_lakehouse(scenario["lake"])
    assert report.ok, report.problems
    assert report.checked_runs > 60


def test_every_recorded_version_reads_back_with_an_independent_reader(scenario):
    runs = scenario["lake"].store.component_runs()
    for rec in runs[runs["status"] == "succeeded"].to_dict("records"):
        data = DeltaTable(rec["output_path"], version=rec["output_version"]).to_pyarrow_table(
            columns=[RUN_ID_COLUMN])
        assert data.column(RUN_ID_COLUMN).to_pylist().count(rec["run_id"]) == rec["output_rows"]


def test_predictions_reach_the_model_and_its_training_set_through_mlflow(scenario):
    lake = scenario["lake"]
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
        registered[model["version"]] = rec
    preds = runs[(runs["component"] == "tip_predictions") & (runs["status"] == "succeeded")]
    assert len(preds) >= 7
    for rec in preds.to_dict("records"):
        (model_input,) = [i for i in rec["inputs"] if i["kind"] == "model"]
        training = registered[model_input["model_version"]]
        assert model_input["mlflow_run_id"] == training["mlflow_run_id"]
        assert training["started_at"] < rec["started_at"]
    # Predictions made after the second retrain use the second model.
    late = preds[preds["partition_key"] >= "2026-01-19"]
    assert {next(i["model_version"] for i in r["inputs"] if i["kind"] == "model") for r in late.to_dict("records")} == {"2"}


def test_injected_faults_are_in_the_data(scenario):
    lake = scenario["lake"]
    runs = lake.store.component_runs()
    # Missing partition: the raw feed never arrived - a failed source run - and nothing downstream ran.
    day = runs[runs["partition_key"] == "2026-01-18"]
    statuses = dict(zip(day["component"], day["status"]))
    assert statuses["raw_trips"] == "failed"
    assert day[day["component"] == "raw_trips"]["error_type"].iloc[0].endswith("SourceMissing")
    assert "cleaned_trips" not in statuses and "trip_features" not in statuses
    assert statuses["tip_predictions"] == "skipped"
    # ETL bug: fares in cents on that day only.
    cleaned = DeltaTable(lake.layout.table("cleaned_trips")).to_pandas(columns=["_tl_partition", "fare_amount"])
    means = cleaned.groupby("_tl_partition")["fare_amount"].mean()
    assert means["2026-01-14"] > 50 * means["2026-01-13"]
    # Covariate shift: a new zone appears from its start date.
    feats = DeltaTable(lake.layout.table("trip_features")).to_pandas(columns=["_tl_partition", "pickup_zone"])
    lakeside = feats[feats["pickup_zone"] == "Lakeside"]["_tl_partition"]
    assert lakeside.min() == "2026-01-16"
    # Late labels: that day's trips are labelled two days later than usual.
    labels = DeltaTable(lake.layout.table("trip_labels")).to_pandas()
    late = labels[labels["trip_date"] == "2026-01-08"]
    assert set(late["label_date"]) == {"2026-01-12"}
    # Missing labels: about half of that day's labels never arrive.
    assert 0.3 < (labels["trip_date"] == "2026-01-09").sum() / (labels["trip_date"] == "2026-01-07").sum() < 0.7


def test_training_set_reads_exactly_the_two_previous_weeks(scenario):
    runs = scenario["lake"].store.component_runs()
    rec = runs[(runs["component"] == "training_set") & (runs["partition_key"] == "2026-01-19")].iloc[0]
    features = next(i for i in rec["inputs"] if i["name"] == "trip_features")
    assert list(features["partitions"])[0] == "2026-01-05" and list(features["partitions"])[-1] == "2026-01-18"
    assert list(features["missing_partitions"]) == ["2026-01-18"]  # the day whose feed never arrived
