"""The reference pipeline's transforms as plain functions, DataFrame in, DataFrame out: no
lakehouse, no Dagster run - what ``component_spec(asset).fn`` is kept for."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from tracelake.assets import TripSimulatorResource, cleaned_trips, raw_trips, training_set, trip_features
from tracelake.assets.features import FEATURE_COLUMNS
from tracelake.lineage import SourceMissing, component_spec


@pytest.fixture(scope="module")
def raw(spark):
    feed = TripSimulatorResource(seed=3, trips_per_day=300, faults=[]).world().raw_feed(date(2026, 1, 14))
    return spark.createDataFrame(feed)


def _clean(raw, faults):
    context = dg.build_asset_context(partition_key="2026-01-14")
    return component_spec(cleaned_trips).fn(context, raw_trips=raw,
                                             simulator=TripSimulatorResource(seed=3, trips_per_day=300, faults=faults))


def test_cleaning_types_the_trips_and_the_injected_bug_puts_fares_in_cents(raw):
    good = _clean(raw, []).toPandas()
    bad = _clean(raw, ["etl_bug@2026-01-14"]).toPandas()
    assert str(good["pickup_date"].iloc[0]) == "2026-01-14" and (good["duration_min"] > 0).mean() > 0.99
    assert good["fare_amount"].median() < 60 < bad["fare_amount"].median()
    assert (bad["fare_amount"] / good["fare_amount"]).round().median() == 100
    assert len(good) == len(bad) == raw.count()  # the transform drops nothing: quarantine decides


def test_features_are_computed_per_trip(raw):
    features = component_spec(trip_features).fn(cleaned_trips=_clean(raw, [])).toPandas()
    assert set(FEATURE_COLUMNS) <= set(features.columns)
    row = features[features["distance_km"] > 1].iloc[0]
    assert row["fare_per_km"] == pytest.approx(round(row["fare_amount"] / row["distance_km"], 4))
    assert set(features["is_weekend"]) == {0}  # 2026-01-14 is a Wednesday
    assert features["pickup_hour"].between(0, 23).all()


def test_the_training_set_keeps_only_labelled_trips(raw, spark):
    features = component_spec(trip_features).fn(cleaned_trips=_clean(raw, []))
    world = TripSimulatorResource(seed=3, trips_per_day=300, faults=["missing_labels@2026-01-14:0.5"]).world()
    labels = spark.createDataFrame(world.outcomes(date(2026, 1, 14)))
    rows = component_spec(training_set).fn(trip_features=features, trip_labels=labels).toPandas()
    assert 0.3 < len(rows) / features.count() < 0.7
    assert set(rows["label"]) == {0, 1} and (rows["label"] == rows["tipped"].astype(int)).all()


def test_a_feed_that_never_arrived_is_a_missing_source():
    context = dg.build_asset_context(partition_key="2026-01-14")
    simulator = TripSimulatorResource(seed=3, faults=["missing_partition@2026-01-14"])
    with pytest.raises(SourceMissing, match="never arrived"):
        component_spec(raw_trips).fn(context, simulator=simulator)
