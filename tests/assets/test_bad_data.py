"""Bad data through the reference pipeline's real components (docs/monitoring.md, "Bad data"):
what each class does - quarantine, block or warn - as the declared tests in ``assets/`` say.

One small day (about 100 trips) is delivered dirty - infinite and NaN numbers, trips delivered
twice, a 1 MB string - and run through ``raw_trips -> cleaned_trips -> trip_features`` with
``dg.materialize`` into a private lakehouse; an empty delivery is run through ``raw_trips``.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

from tracelake.assets import TripSimulatorResource, cleaned_trips, raw_trips, trip_features
from tracelake.jobs.resources import local_resources
from tracelake.lineage import open_lakehouse
from tracelake.lineage.record.checks import MAX_TEXT

DIRTY_DAY, EMPTY_DAY = "2026-01-14", "2026-01-15"
INFINITE, NAN_DISTANCE, DUPLICATED, HUGE = (0, 1), (2,), (3, 4, 5), 6   # row positions in the feed


def _dirty(feed: pd.DataFrame) -> pd.DataFrame:
    feed = feed.copy()
    feed.loc[feed.index[INFINITE[0]], "fare_amount"] = np.inf
    feed.loc[feed.index[INFINITE[1]], "fare_amount"] = -np.inf
    feed.loc[feed.index[NAN_DISTANCE[0]], "distance_km"] = np.nan
    feed.loc[feed.index[HUGE], "payment_type"] = "x" * 1_000_000
    return pd.concat([feed, feed.iloc[list(DUPLICATED)]], ignore_index=True)   # delivered twice


class _Delivered:
    """The simulated world, with its raw feed altered on the way in."""

    def __init__(self, world: Any, alteration: str):
        self._world, self._alteration = world, alteration

    def __getattr__(self, name: str) -> Any:
        return getattr(self._world, name)

    def raw_feed(self, day: date) -> pd.DataFrame | None:
        feed = self._world.raw_feed(day)
        if self._alteration == "dirty":
            return _dirty(feed)
        return feed.iloc[0:0] if self._alteration == "empty" else feed


class BadFeedSimulator(TripSimulatorResource):
    alteration: str = ""   # "dirty" | "empty"

    def world(self) -> Any:
        return _Delivered(super().world(), self.alteration)


def _run(home: str, assets: list, day: str, alteration: str) -> dg.ExecuteInProcessResult:
    resources = local_resources(home, seed=5, trips_per_day=100)
    resources["simulator"] = BadFeedSimulator(seed=5, trips_per_day=100, faults=[], alteration=alteration)
    return dg.materialize(assets, partition_key=day, resources=resources, raise_on_error=False)


def _table(home: str, name: str) -> pd.DataFrame:
    rows = DeltaTable(open_lakehouse(home).layout.table(name)).to_pandas()
    return rows[rows["_tl_partition"] == DIRTY_DAY] if "_tl_partition" in rows else rows


@pytest.fixture(scope="module")
def dirty(tmp_path_factory, spark) -> dict[str, Any]:
    home = str(tmp_path_factory.mktemp("bad-data") / "lakehouse")
    result = _run(home, [raw_trips, cleaned_trips, trip_features], DIRTY_DAY, "dirty")
    feed = _dirty(TripSimulatorResource(seed=5, trips_per_day=100, faults=[]).world().raw_feed(date(2026, 1, 14)))
    lake = open_lakehouse(home)
    lake.flush()
    return {"home": home, "result": result, "feed": feed, "checks": lake.store.read("check_results")}


def _ids(feed: pd.DataFrame, positions: tuple[int, ...]) -> set[str]:
    return {feed["trip_id"].iloc[i] for i in positions}


def test_a_dirty_day_still_flows_its_good_rows(dirty):
    assert dirty["result"].success   # quarantining and warning tests do not stop the pipeline
    features = _table(dirty["home"], "trip_features")
    assert len(features) > 80


def test_infinite_and_nan_numbers_are_quarantined_and_never_become_features(dirty):
    bad = _ids(dirty["feed"], INFINITE + NAN_DISTANCE)
    quarantine = _table(dirty["home"], "cleaned_trips__quarantine").set_index("trip_id")
    assert bad <= set(quarantine.index)
    rules = {t: set(quarantine.loc[t, "_tl_violations"]) for t in bad}
    assert {"fare_amount_finite"} <= rules[_ids(dirty["feed"], (INFINITE[0],)).pop()], rules
    # A NaN in a pandas feed reaches Spark as a null: set aside by positive_distance (a null
    # fails ``distance_km > 0``); a NaN computed in Spark would meet distance_km_finite.
    assert {"positive_distance"} <= rules[_ids(dirty["feed"], NAN_DISTANCE).pop()], rules
    features = _table(dirty["home"], "trip_features")
    assert not bad & set(features["trip_id"])
    for column in ("fare_amount", "distance_km", "fare_per_km", "avg_speed_kmh"):
        assert features[column].map(lambda v: v is None or math.isfinite(v)).all(), column


def test_trips_delivered_twice_are_quarantined_and_absent_downstream(dirty):
    twice = _ids(dirty["feed"], DUPLICATED)
    raw = _table(dirty["home"], "raw_trips")
    assert raw["trip_id"].isin(twice).sum() == 6   # bronze keeps what arrived ...
    checks = dirty["checks"]
    raw_unique = checks[(checks["component"] == "raw_trips") & (checks["check_name"] == "trip_id_unique")].iloc[0]
    assert not raw_unique["passed"] and raw_unique["failing_rows"] == 3   # ... and says so
    quarantine = _table(dirty["home"], "cleaned_trips__quarantine")
    copies = quarantine[quarantine["trip_id"].isin(twice)]
    assert len(copies) == 3 and all("trip_id_unique" in set(v) for v in copies["_tl_violations"])
    for table in ("cleaned_trips", "trip_features"):
        rows = _table(dirty["home"], table)
        assert rows["trip_id"].is_unique, table
        assert twice <= set(rows["trip_id"]), table   # the first copy of each is kept


def test_an_oversized_string_is_reported_with_a_bounded_sample(dirty):
    checks = dirty["checks"]
    allowed = checks[(checks["component"] == "cleaned_trips") & (checks["check_name"] == "payment_type_allowed")]
    assert not allowed.iloc[0]["passed"]   # an unexpected value: reported, not blocking
    assert checks["observed_text"].str.len().max() <= MAX_TEXT + 40
    assert checks["details_json"].fillna("").str.len().max() < 20_000


def test_an_empty_feed_fails_saying_so_not_with_a_spark_error(dirty):
    home = dirty["home"]
    result = _run(home, [raw_trips], EMPTY_DAY, "empty")
    assert not result.success
    runs = open_lakehouse(home).store.component_runs()
    run = runs[(runs["component"] == "raw_trips") & (runs["partition_key"] == EMPTY_DAY)].iloc[0]
    message = str(run["error_message"])
    assert run["status"] == "failed", run
    assert "CANNOT_INFER" not in message and "Traceback" not in message, message
    # The blocking RowCount(min=1) names the empty delivery; no Spark schema-inference error.
    assert "row_count: 0 rows" in message and "nothing was written to raw_trips" in message, message
    raw = DeltaTable(open_lakehouse(home).layout.table("raw_trips")).to_pandas()
    assert (raw["_tl_partition"] == EMPTY_DAY).sum() == 0
