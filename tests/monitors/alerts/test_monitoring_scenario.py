"""Monitoring on the faulted reference scenario (issue: monitors)."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
from deltalake import DeltaTable

from tracelake.jobs.cli import main
from tracelake.lineage import CHECK_RESULTS, METRICS
from tracelake.monitors.alerts.manager import AlertManager
from tracelake.monitors.metrics.history import import_mlflow_metrics
from tracelake.monitors.alerts.watch import stored_anomalies


def _checks(lake, component, partition=None):
    frame = lake.store.read(CHECK_RESULTS)
    frame = frame[frame["component"] == component]
    return frame if partition is None else frame[frame["partition_key"] == partition]


def _alerts(lake, policy):
    return [a for a in AlertManager(lake).alerts() if a.policy == policy]


def test_schema_break_fails_a_blocking_test_and_downstream_does_not_run(scenario):
    lake = scenario["lake"]
    schema = _checks(lake, "raw_trips", "2026-01-21").set_index("check_name").loc["schema"]
    assert not schema["passed"] and schema["blocking"]
    assert "missing column fare_amount" in schema["observed_text"] and "unexpected column fare_usd" in schema["observed_text"]
    runs = lake.store.component_runs()
    day = runs[runs["partition_key"] == "2026-01-21"]
    assert set(day["component"]) >= {"raw_trips", "trip_labels"}
    assert not {"cleaned_trips", "trip_features"} & set(day["component"])
    (blocked,) = [a for a in _alerts(lake, "pipeline_blocked") if a.component == "raw_trips"]
    assert blocked.status == "open" and "fare_usd" in blocked.message
    # Every other day's raw feed passed its schema.
    other = _checks(lake, "raw_trips")
    assert other[(other["check_name"] == "schema") & (other["partition_key"] != "2026-01-21")]["passed"].all()


def test_the_etl_bug_fails_the_fare_range_test_on_that_day_only(scenario):
    lake = scenario["lake"]
    rng = _checks(lake, "cleaned_trips")
    rng = rng[rng["check_name"] == "fare_amount_range"].set_index("partition_key")
    assert not rng.loc["2026-01-14", "passed"] and rng.loc["2026-01-14", "observed_value"] > 0.9
    assert rng.drop(index="2026-01-14")["passed"].all()
    assert rng.loc["2026-01-14", "threshold_value"] == 0.01


def test_concept_drift_is_one_recall_alert_that_resolves(scenario):
    lake = scenario["lake"]
    (alert,) = _alerts(lake, "tip_recall_sla")
    assert alert.occurrences >= 2  # breached on several mornings, paged once
    assert alert.status == "resolved"
    evals = lake.store.read("sla_evaluations")
    recall = evals[evals["sla"] == "tip_recall"].sort_values("as_of")
    breached_days = recall[recall["breached"]]["as_of"].dt.strftime("%Y-%m-%d").tolist()
    assert breached_days and all("2026-01-18" <= d <= "2026-01-21" for d in breached_days)
    assert not recall[recall["as_of"] < pd.Timestamp("2026-01-18", tz="UTC")]["breached"].any()


def test_a_missing_partition_is_staleness_not_an_exception(scenario):
    lake = scenario["lake"]
    runs = lake.store.component_runs()
    preds = runs[(runs["component"] == "tip_predictions") & (runs["partition_key"] == "2026-01-18")].iloc[0]
    assert preds["status"] == "skipped" and "2026-01-18" in preds["error_message"]
    fresh = _checks(lake, "training_set", "2026-01-19").set_index("check_name").loc["input_freshness"]
    assert not fresh["passed"] and fresh["observed_value"] == 1 and "2026-01-18" in fresh["observed_text"]
    late = [a for a in _alerts(lake, "predictions_late") if "2026-01-18" in a.message]
    assert len(late) == 1 and late[0].status == "resolved"


def test_late_labels_revise_a_days_figures_as_they_arrive(scenario):
    lake = scenario["lake"]
    m = lake.store.read(METRICS)
    cov = m[(m["metric"] == "label_coverage") & (m["slice_key"] == "all") & (m["component"] == "tip_predictions")]
    day13 = cov[cov["window_start"] == pd.Timestamp("2026-01-13", tz="UTC")].sort_values("computed_at")["value"].tolist()
    assert day13[0] == 0 and day13[-1] == 1  # computed before the late labels landed, then revised
    day15 = cov[cov["window_start"] == pd.Timestamp("2026-01-15", tz="UTC")].sort_values("computed_at")["value"].tolist()
    assert 0.35 < day15[-1] < 0.65  # half of that day's labels never arrive
    slices = m[(m["metric"] == "recall") & (m["slice_key"] == "pickup_zone")]
    assert "Lakeside" in set(slices["slice_value"])  # the covariate shift's new zone is its own slice


def test_quarantine_keeps_every_row(scenario):
    lake = scenario["lake"]
    raw = DeltaTable(lake.layout.table("raw_trips")).to_pandas(columns=["_tl_partition"])["_tl_partition"].value_counts()
    kept = DeltaTable(lake.layout.table("cleaned_trips")).to_pandas(columns=["_tl_partition"])["_tl_partition"].value_counts()
    q = DeltaTable(lake.layout.table("cleaned_trips__quarantine")).to_pandas(columns=["_tl_partition", "_tl_violations"])
    quarantined = q["_tl_partition"].value_counts()
    assert quarantined.sum() > 0
    for day, n in kept.items():
        assert raw[day] == n + quarantined.get(day, 0), day
    assert {r for v in q["_tl_violations"] for r in v} <= {"positive_distance", "positive_duration", "positive_fare",
                                                          "passenger_count_not_null"}


def test_sla_results_are_asset_checks_in_dagster_and_anomalies_are_stored(scenario):
    records = scenario["instance"].get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION), limit=10_000)
    names = {r.event_log_entry.dagster_event.event_specific_data.check_name for r in records}
    assert {"sla_tip_recall", "sla_predictions_ready", "sla_etl_volume", "schema", "fare_amount_range"} <= names
    anomalies = stored_anomalies(scenario["lake"])
    assert "prediction_bias" in set(anomalies["monitor"])
    assert anomalies[anomalies["monitor"] == "prediction_bias"]["time"].min() >= pd.Timestamp("2026-01-16", tz="UTC")


def test_mlflow_metrics_import_into_history_once(scenario):
    lake = scenario["lake"]
    first = import_mlflow_metrics(lake, "tracelake/tip_model", component="tip_model")
    assert first >= 2 * 7  # two training runs, seven metrics each
    assert import_mlflow_metrics(lake, "tracelake/tip_model", component="tip_model") == 0


def test_monitoring_cli(scenario, capsys):
    home = scenario["home"]
    assert main(["--home", home, "alerts", "--status", "all", "--json"]) == 0
    alerts = json.loads(capsys.readouterr().out)
    assert {a["policy"] for a in alerts} >= {"tip_recall_sla", "predictions_late", "pipeline_blocked"}
    assert main(["--home", home, "metrics", "tip_predictions", "--metric", "recall", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) >= 5
    assert main(["--home", home, "metrics", "cleaned_trips", "--metric", "output_rows", "--anomalies"]) == 0
    capsys.readouterr()
    assert main(["--home", home, "checks", "--component", "cleaned_trips", "--failed", "--json"]) == 0
    failed = json.loads(capsys.readouterr().out)
    assert any(c["check_name"] == "fare_amount_range" and c["partition_key"] == "2026-01-14" for c in failed)
    assert main(["--home", home, "metrics", "tip_predictions", "--metric", "nope"]) == 2
