"""Calibration of the default anomaly rules on the reference pipeline's world (no Spark).

Two rates, measured and printed, not assumed:
- the false-positive rate on quiet days: the metrics the pipeline records every day (trip
  volume, tip rate, mean fare, mean distance, label coverage) over many seeds of the simulated
  world with no fault - what `tracelake metrics ... --anomalies` shows on an ordinary demo;
- the catch rate: every demo fault that moves one of those metrics, on the demo's own dates,
  must be flagged on its first day.

The metric values come from the simulator that feeds the pipeline (``World``), computed the way
the pipeline computes them (daily counts, means, the share of a day's labels present two days
later); the ETL bug's cents are applied as cleaned_trips applies them.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

import pandas as pd
import pytest

from tracelake.assets import SIM_START, parse_faults
from tracelake.assets.simulation import World
from tracelake.jobs.demo import DEFAULT_FAULTS
from tracelake.monitors.metrics.anomaly import RollingBand, SeasonalBand, default_rules, detect

pytestmark = pytest.mark.unit

DAYS = 21          # the default demo's three weeks
QUIET_SEEDS = range(1, 16)
METRICS = ("trips", "tip_rate", "mean_fare", "mean_distance", "label_coverage")


def _daily_metrics(world: World, day: date) -> dict[str, float]:
    trips = world.trips(day)
    outcomes = world.outcomes(day)
    fare = trips["fare_amount"].abs()
    if world.faults.active("etl_bug", day):
        fare = fare * 100  # the bug writes fares in cents (assets/etl.py)
    arrived = outcomes["label_date"] <= (day + timedelta(days=world.label_lag_days)).isoformat()
    return {"trips": float(len(trips)), "tip_rate": float(outcomes["tipped"].mean()), "mean_fare": float(fare.mean()),
            "mean_distance": float(trips["distance_km"].abs().mean()),
            "label_coverage": float(arrived.sum() / len(trips))}


@functools.cache
def _series(world: World, days: int = DAYS) -> pd.DataFrame:
    start = date.fromisoformat(SIM_START)
    rows = {pd.Timestamp(start + timedelta(d), tz="UTC"): _daily_metrics(world, start + timedelta(d)) for d in range(days)}
    return pd.DataFrame.from_dict(rows, orient="index")


def _rates(rules_factory) -> tuple[int, int]:
    flagged = judged = 0
    for seed in QUIET_SEEDS:
        frame = _series(World(seed=seed))
        for metric in METRICS:
            flagged += len(detect(frame[metric], rules_factory()))
            judged += len(frame) - 7  # the first week is learning: no rule has a peer yet
    return flagged, judged


def test_quiet_days_raise_no_false_alarms_with_the_default_rules():
    flagged, judged = _rates(default_rules)
    old_flagged, _ = _rates(lambda: [SeasonalBand(), RollingBand()])  # the rules before calibration
    print(f"\nquiet days: default rules flag {flagged}/{judged} points ({flagged / judged:.2%}); "
          f"the uncalibrated rules flagged {old_flagged} ({old_flagged / judged:.2%})")
    assert flagged / judged <= 0.005
    assert old_flagged > 10 * max(flagged, 1)  # weekends were the alarms: the calibration is what fixed them


# fault kind -> the metrics it moves on its first day (the missing feed and the schema break move
# no metric: there is no value that day, and the ReadyBy SLA and the blocked-pipeline alert catch them)
MOVES = {"etl_bug": ("mean_fare",), "concept_drift": ("tip_rate",), "covariate_shift": ("mean_distance", "mean_fare"),
         "late_labels": ("label_coverage",), "missing_labels": ("label_coverage",)}


def test_every_demo_fault_that_moves_a_metric_is_caught_on_its_first_day():
    plan = parse_faults(DEFAULT_FAULTS)
    frame = _series(World(faults=plan))
    expected = [(f.kind, m, pd.Timestamp(f.start, tz="UTC")) for f in plan.faults for m in MOVES.get(f.kind, ())]
    found = {m: {a.time for a in detect(frame[m], default_rules())} for m in METRICS}
    caught = [(kind, m, t) for kind, m, t in expected if t in found[m]]
    print(f"\ndemo faults: {len(caught)}/{len(expected)} caught on their first day "
          + ", ".join(f"{k}->{m}" for k, m, _ in caught))
    assert caught == expected
    # ...and nothing is flagged on the faulted run's quiet days (no fault active at all).
    quiet = {t for t in frame.index if not any(f.active(t.date()) for f in plan.faults)}
    stray = sorted((m, t) for m, times in found.items() for t in times if t in quiet)
    assert not stray, stray
