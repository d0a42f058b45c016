"""Jobs and schedules of the reference pipeline, one per cadence."""

from __future__ import annotations

import dagster as dg

from tracelake.assets import (
    cleaned_trips,
    data_drift,
    data_profiles,
    model_evaluation,
    raw_trips,
    tip_model,
    tip_predictions,
    training_set,
    trip_features,
    trip_labels,
)

from .monitoring import monitoring_checks


def _assets(*assets: dg.AssetsDefinition) -> dg.AssetSelection:
    """The assets and their declared tests - not the SLA checks, which the monitoring job runs."""
    return dg.AssetSelection.assets(*assets) - dg.AssetSelection.checks(monitoring_checks)


__all__ = [
    "PIPELINE_JOBS",
    "PIPELINE_SCHEDULES",
    "daily_drift_job",
    "daily_etl_job",
    "daily_evaluation_job",
    "daily_inference_job",
    "weekly_training_job",
]

daily_etl_job = dg.define_asset_job(
    "daily_etl", selection=_assets(raw_trips, cleaned_trips, trip_features, trip_labels),
    description="Land the day's raw trips and labels, clean them and build features.",
)
weekly_training_job = dg.define_asset_job(
    "weekly_training", selection=_assets(training_set, tip_model),
    description="Build the training set from the previous two weeks and register a new tip model.",
)
daily_inference_job = dg.define_asset_job(
    "daily_inference", selection=_assets(tip_predictions),
    description="Score the day's trips with the newest model.",
)
daily_evaluation_job = dg.define_asset_job(
    "daily_evaluation", selection=_assets(model_evaluation),
    description="Score last week's predictions against the labels that arrived today.",
)

daily_drift_job = dg.define_asset_job(
    "daily_drift", selection=_assets(data_profiles, data_drift),
    description="Profile the day's features, predictions and labels; compare them with the model's training data.",
)

PIPELINE_JOBS = [daily_etl_job, weekly_training_job, daily_inference_job, daily_evaluation_job, daily_drift_job]

# Each schedule materialises the partition that just closed, at a time that leaves room for
# the previous cadence to finish (ETL 01:00, training Monday 02:00, inference 03:00, evaluation 05:00,
# drift 06:00).
PIPELINE_SCHEDULES = [
    dg.build_schedule_from_partitioned_job(daily_etl_job, hour_of_day=1),
    dg.build_schedule_from_partitioned_job(weekly_training_job, day_of_week=1, hour_of_day=2),
    dg.build_schedule_from_partitioned_job(daily_inference_job, hour_of_day=3),
    dg.build_schedule_from_partitioned_job(daily_evaluation_job, hour_of_day=5),
    dg.build_schedule_from_partitioned_job(daily_drift_job, hour_of_day=6),
]
