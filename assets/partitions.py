"""Cadences of the reference pipeline: daily ETL/inference/labels, weekly (Monday) retraining."""

from __future__ import annotations

import os
import warnings
from datetime import date

import dagster as dg

__all__ = [
    "SIM_START",
    "daily",
    "previous_two_weeks",
    "previous_week_days",
    "recent_labels",
    "recent_models",
    "weekly",
]

SIM_START = "2026-01-05"  # a Monday: simulated history starts here


def _window_end() -> str | None:
    """Where the partitions stop: ``TRACELAKE_PARTITIONS_END`` (exclusive, YYYY-MM-DD), else open
    (up to today, as a live pipeline wants).

    Read when the code location loads - partitions are part of the asset definitions, which
    Dagster builds at load - and nowhere else. ``tracelake ui`` sets it to the day after the
    demo's last simulated day, so the UI shows the demo's window instead of months of partitions
    that were never meant to exist.
    """
    end = os.environ.get("TRACELAKE_PARTITIONS_END") or None
    if end is not None:
        date.fromisoformat(end)  # a malformed value fails the code location with this name in the error
    return end


daily = dg.DailyPartitionsDefinition(start_date=SIM_START, end_date=_window_end())
weekly = dg.WeeklyPartitionsDefinition(start_date=SIM_START, day_offset=1, end_date=_window_end())

# allow_nonexistent_upstream_partitions is flagged beta; the windows below reach before the first
# partition at the start of history, which must simply mean "no data yet", not an error.
warnings.filterwarnings("ignore", message=".*allow_nonexistent_upstream_partitions.*")

# A weekly training run uses the two weeks before it (offsets count downstream windows).
previous_two_weeks = dg.TimeWindowPartitionMapping(start_offset=-2, end_offset=-1,
                                                   allow_nonexistent_upstream_partitions=True)
# Daily inference may use any model trained in the last eight weeks; it picks the newest.
recent_models = dg.TimeWindowPartitionMapping(start_offset=-8, end_offset=0,
                                              allow_nonexistent_upstream_partitions=True)
# Daily evaluation looks at the predictions of the previous week as their labels arrive.
previous_week_days = dg.TimeWindowPartitionMapping(start_offset=-7, end_offset=-1,
                                                   allow_nonexistent_upstream_partitions=True)
# ... against every label that arrived in the last ten days, today's included.
recent_labels = dg.TimeWindowPartitionMapping(start_offset=-10, end_offset=0,
                                              allow_nonexistent_upstream_partitions=True)
