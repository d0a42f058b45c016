"""Ingestion and daily ETL: raw trips as delivered, then cleaned and typed trips."""

from __future__ import annotations

from datetime import date

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tracelake.lineage import component

from .partitions import daily
from .resources import TripSimulatorResource

__all__ = ["raw_trips", "cleaned_trips"]


@component(
    partitions_def=daily,
    optional_output=True,
    schema_evolution="merge",  # bronze keeps whatever arrived; declared checks decide what passes
    owner="team:data-eng",
    group_name="ingestion",
    tags={"layer": "bronze"},
    kinds={"spark", "delta"},
)
def raw_trips(context: dg.AssetExecutionContext, simulator: TripSimulatorResource):
    """Trips exactly as the upstream feed delivered them for one pickup day.

    A day whose feed never arrived produces no output: the run is recorded as *skipped* and
    Dagster skips everything downstream of it for that day.
    """
    feed = simulator.world().raw_feed(date.fromisoformat(context.partition_key))
    if feed is None:
        return None
    if "passenger_count" in feed:
        feed["passenger_count"] = feed["passenger_count"].astype("Int64")  # keep missing as null
    return feed


@component(
    partitions_def=daily,
    lineage_keys={"raw_trips": "trip_id"},
    owner="team:data-eng",
    group_name="etl",
    tags={"layer": "silver"},
)
def cleaned_trips(context: dg.AssetExecutionContext, raw_trips: DataFrame,
                  simulator: TripSimulatorResource) -> DataFrame:
    """Typed, validated trips: one row per trip with a positive distance, fare and duration."""
    day = date.fromisoformat(context.partition_key)
    df = raw_trips.select(
        F.col("trip_id").cast("string"),
        F.col("pickup_ts").cast("timestamp"),
        F.col("dropoff_ts").cast("timestamp"),
        F.col("pickup_zone").cast("string"),
        F.col("dropoff_zone").cast("string"),
        F.col("distance_km").cast("double"),
        F.col("fare_amount").cast("double"),
        F.col("passenger_count").cast("int"),
        F.col("payment_type").cast("string"),
        F.col("vendor_id").cast("string"),
    )
    df = df.withColumn("duration_min", (F.col("dropoff_ts").cast("long") - F.col("pickup_ts").cast("long")) / 60.0)
    df = df.withColumn("pickup_date", F.to_date("pickup_ts"))
    df = df.where(
        (F.col("distance_km") > 0) & (F.col("fare_amount") > 0) & F.col("passenger_count").isNotNull()
        & (F.col("duration_min") > 0)
    )
    if simulator.world().faults.active("etl_bug", day):
        # Injected fault: a release that switched fares to cents in this ETL step.
        df = df.withColumn("fare_amount", F.round(F.col("fare_amount") * 100, 0))
    return df
