"""A raw feed that never arrives (2026-01-13): the source run fails, nothing downstream runs for
that day, the late-predictions SLA pages once and resolves when the next day is on time."""

from __future__ import annotations

from tracelake.monitors.alerts.manager import AlertManager

DAY = "2026-01-13"


def test_the_missing_day_is_a_failed_source_and_downstream_does_not_run(missing_feed_scenario):
    runs = missing_feed_scenario.lake.store.component_runs()
    day = runs[runs["partition_key"] == DAY]
    statuses = dict(zip(day["component"], day["status"], strict=True))
    assert statuses["raw_trips"] == "failed"
    assert day[day["component"] == "raw_trips"]["error_type"].iloc[0].endswith("SourceMissing")
    assert "cleaned_trips" not in statuses and "trip_features" not in statuses
    preds = day[day["component"] == "tip_predictions"].iloc[0]
    assert preds["status"] == "skipped" and DAY in preds["error_message"]
    # The base history was copied, not re-run: its runs are there too, under the copy's root.
    assert set(runs[runs["partition_key"] == "2026-01-12"]["component"]) >= {"raw_trips", "tip_model"}


def test_late_predictions_page_once_and_resolve(missing_feed_scenario):
    late = [a for a in AlertManager(missing_feed_scenario.lake).alerts()
            if a.policy == "predictions_late" and DAY in a.message]
    assert len(late) == 1 and late[0].status == "resolved"
