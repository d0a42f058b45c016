"""The synthetic world is deterministic and its faults do what they say (no Spark needed)."""

from __future__ import annotations

from datetime import date

import pytest

from tracelake.assets.faults import FaultPlan, parse_fault
from tracelake.assets.simulation import World

DAY = date(2026, 1, 14)


def test_same_seed_same_world_different_seed_different_world():
    a, b, c = World(seed=1), World(seed=1), World(seed=2)
    assert a.trips(DAY).equals(b.trips(DAY))
    assert not a.trips(DAY).equals(c.trips(DAY))
    assert a.labels_arriving(DAY).equals(b.labels_arriving(DAY))


def test_trips_have_a_realistic_shape():
    trips = World().trips(DAY)
    assert 1500 < len(trips) < 2500 and trips["trip_id"].is_unique
    assert set(trips["payment_type"]) == {"card", "cash", "app"}
    assert trips["pickup_zone"].nunique() == 12
    assert (trips["distance_km"] < 0).sum() > 0  # a little dirty data, like real feeds
    assert 0.5 < World().labels_arriving(DAY)["tipped"].mean() < 0.75


def test_faults_bend_the_world_on_their_dates_only():
    plan = FaultPlan.parse("covariate_shift@2026-01-14..,schema_break@2026-01-14,missing_partition@2026-01-15,"
                           "concept_drift@2026-01-14..")
    world, base = World(faults=plan), World()
    assert "Lakeside" in set(world.trips(DAY)["pickup_zone"]) and "Lakeside" not in set(base.trips(DAY)["pickup_zone"])
    broken = world.raw_feed(DAY)
    assert "fare_amount" not in broken and broken["fare_usd"].str.startswith("$").all()
    assert world.raw_feed(date(2026, 1, 15)) is None and world.raw_feed(date(2026, 1, 16)) is not None
    card = base.trips(DAY)["payment_type"] == "card"
    trips = base.trips(DAY)
    assert world.tip_probability(trips, DAY)[card].mean() < base.tip_probability(trips, DAY)[card].mean() - 0.2


def test_late_and_missing_labels():
    world = World(faults=FaultPlan.parse("late_labels@2026-01-10:3,missing_labels@2026-01-11:0.5"))
    assert len(world.labels_arriving(date(2026, 1, 12))) == 0  # Jan 10's labels are three days late
    late = world.labels_arriving(date(2026, 1, 15))
    assert set(late["trip_date"]) == {"2026-01-10", "2026-01-13"}
    half = world.labels_arriving(date(2026, 1, 13))
    assert 0.4 < len(half) / len(World().labels_arriving(date(2026, 1, 13))) < 0.6


@pytest.mark.parametrize("spec, message", [
    ("etl_bug", "needs a date"), ("meteor@2026-01-01", "unknown fault kind"),
    ("etl_bug@2026-13-01", "is not a date"), ("late_labels@2026-01-01:0", "at least 1 day"),
    ("missing_labels@2026-01-01:2", "in (0, 1]"), ("etl_bug@2026-01-05..2026-01-01", "ends before it starts"),
])
def test_bad_fault_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        parse_fault(spec)
