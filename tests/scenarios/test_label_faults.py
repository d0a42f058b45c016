"""Label faults: the labels of 2026-01-13's trips arrive two days late, and half of
2026-01-14's never arrive. Late-label evaluation revises a day's figures as its labels land."""

from __future__ import annotations

import pandas as pd
from deltalake import DeltaTable

from tracelake.lineage import METRICS


def test_the_faults_are_in_the_labels(label_faults_scenario):
    labels = DeltaTable(label_faults_scenario.lake.layout.table("trip_labels")).to_pandas()
    assert set(labels[labels["trip_date"] == "2026-01-13"]["label_date"]) == {"2026-01-17"}
    ratio = (labels["trip_date"] == "2026-01-14").sum() / (labels["trip_date"] == "2026-01-12").sum()
    assert 0.3 < ratio < 0.7


def test_late_labels_revise_a_days_figures_as_they_arrive(label_faults_scenario):
    m = label_faults_scenario.lake.store.read(METRICS)
    cov = m[(m["metric"] == "label_coverage") & (m["slice_key"] == "all") & (m["component"] == "tip_predictions")]
    day13 = cov[cov["window_start"] == pd.Timestamp("2026-01-13", tz="UTC")].sort_values("computed_at")["value"].tolist()
    assert day13[0] == 0 and day13[-1] == 1  # computed before the late labels landed, then revised
    day14 = cov[cov["window_start"] == pd.Timestamp("2026-01-14", tz="UTC")].sort_values("computed_at")["value"].tolist()
    assert 0.35 < day14[-1] < 0.65  # half of that day's labels never arrive
