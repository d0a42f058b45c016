"""Drift on the ETL-bug scenario: the bad day shows as fare and prediction drift whose root cause
is the cleaning run's failed test, and the retrain of 2026-01-19 moves the reference."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

from tracelake.assets import DRIFT_TARGETS
from tracelake.monitors.drift.query import drift_of_window, explain_drift, parse_window

FEATURES = next(t for t in DRIFT_TARGETS if t.table == "trip_features")


@pytest.fixture(scope="module")
def drift(etl_bug_scenario):
    return DeltaTable(etl_bug_scenario.lake.layout.table("data_drift")).to_pandas()


def _overall(drift, table, day):
    rows = drift[(drift["table_name"] == table) & (drift["drift_date"] == day) & (drift["slice_key"] == "all")]
    return rows.set_index("column_name")


def test_etl_bug_shows_as_fare_drift_and_prediction_drift(drift):
    bug = _overall(drift, "trip_features", "2026-01-14")
    assert bug.loc["fare_amount", "drifted"] and bug.loc["fare_amount", "score"] > 10   # cents: 100x the scale
    assert _overall(drift, "tip_predictions", "2026-01-14").loc["tip_probability", "drifted"]
    assert not _overall(drift, "trip_features", "2026-01-13").loc["fare_amount", "drifted"]


def test_the_root_cause_names_the_cleaning_run_whose_fare_test_failed(etl_bug_scenario):
    lake = etl_bug_scenario.lake
    view = explain_drift(lake, drift_of_window(lake, FEATURES, parse_window(lake, "trip_features", "2026-01-14")))
    assert "fare_amount" in [c["column"] for c in view["drifted_columns"]]
    assert any(u["component"] == "cleaned_trips" and u["failed_checks"] for u in view["upstream_notable"])


def test_reference_follows_the_model_that_scored_the_day(drift):
    before = _overall(drift, "trip_features", "2026-01-17")
    after = _overall(drift, "trip_features", "2026-01-19")
    assert before["model"].iloc[0] != after["model"].iloc[0]
    assert before["reference_version"].iloc[0] < after["reference_version"].iloc[0]
    assert "trained tip_model" in after["reference"].iloc[0]
