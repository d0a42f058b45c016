"""Daily feature engineering for the tip model."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tracelake.lineage import component
from tracelake.monitors.checks import Finite, NullRate, Range

from .partitions import daily

__all__ = ["CATEGORICAL_FEATURES", "FEATURE_COLUMNS", "NUMERIC_FEATURES", "trip_features"]

NUMERIC_FEATURES = ["pickup_hour", "day_of_week", "is_weekend", "is_night", "distance_km", "duration_min",
                    "fare_amount", "fare_per_km", "avg_speed_kmh", "passenger_count"]
CATEGORICAL_FEATURES = ["pickup_zone", "payment_type"]
FEATURE_COLUMNS = NUMERIC_FEATURES + CATEGORICAL_FEATURES


@component(
    partitions_def=daily,
    lineage_keys={"cleaned_trips": "trip_id"},
    owner="team:ml",
    group_name="features",
    tags={"layer": "gold"},
    checks=[
        NullRate("fare_per_km", 0.0),
        # A gate: a non-finite feature would poison training and scoring downstream.
        Finite("fare_per_km", blocking=True),
        Finite("avg_speed_kmh", blocking=True),
        Range("avg_speed_kmh", 1, 150, max_fail_rate=0.02, severity="warn"),
        Range("pickup_hour", 0, 23),
    ],
)
def trip_features(cleaned_trips: DataFrame) -> DataFrame:
    """Model features per trip: time of day, distance, fare, speed, zone and payment type."""
    hour = F.hour("pickup_ts")
    dow = F.dayofweek("pickup_ts")  # 1 = Sunday
    return cleaned_trips.select(
        "trip_id",
        "pickup_date",
        "pickup_ts",
        hour.alias("pickup_hour"),
        dow.alias("day_of_week"),
        F.when(dow.isin(1, 7), 1).otherwise(0).alias("is_weekend"),
        F.when((hour >= 22) | (hour <= 4), 1).otherwise(0).alias("is_night"),
        "distance_km",
        "duration_min",
        "fare_amount",
        F.round(F.col("fare_amount") / F.col("distance_km"), 4).alias("fare_per_km"),
        F.round(F.col("distance_km") / (F.col("duration_min") / 60.0), 3).alias("avg_speed_kmh"),
        F.col("passenger_count").cast("double").alias("passenger_count"),
        "pickup_zone",
        "payment_type",
    )
