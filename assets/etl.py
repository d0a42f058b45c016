"""Ingestion and daily ETL: raw trips as delivered, then cleaned and typed trips."""

from __future__ import annotations

from datetime import date

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tracelake.lineage import SourceMissing, component
from tracelake.monitors.checks import (
    AllowedValues,
    Expression,
    Finite,
    NotNull,
    Range,
    RowCount,
    RowCountVsHistory,
    Schema,
    Unique,
)
from tracelake.monitors.runbooks import runbook

from .partitions import daily
from .resources import TripSimulatorResource

__all__ = ["cleaned_trips", "raw_trips"]



RAW_SCHEMA = {
    "trip_id": "string", "pickup_ts": "timestamp", "dropoff_ts": "timestamp", "pickup_zone": "string",
    "dropoff_zone": "string", "distance_km": "double", "fare_amount": "double", "passenger_count": "bigint",
    "payment_type": "string", "vendor_id": "string",
}


@component(
    partitions_def=daily,
    schema_evolution="merge",  # bronze keeps whatever arrived; declared checks decide what passes
    checks=[
        # Blocking: a feed that changed shape must not flow into the ETL (downstream is skipped).
        Schema(RAW_SCHEMA, non_null=["trip_id", "pickup_ts"], blocking=True,
               runbook_url=runbook("raw-trips-schema")),
        # An empty delivery is a broken feed, not a quiet day: refused like a changed one.
        RowCount(min=1, blocking=True, runbook_url=runbook("raw-trips-schema")),
        Unique("trip_id", severity="error"),   # reported here; duplicates are set aside by the ETL
    ],
    owner="team:data-eng",
    group_name="ingestion",
    tags={"layer": "bronze"},
    kinds={"spark", "delta"},
)
def raw_trips(context: dg.AssetExecutionContext, simulator: TripSimulatorResource):
    """Trips exactly as the upstream feed delivered them for one pickup day.

    A day whose feed never arrived is a failed run (``SourceMissing``): red in the Dagster UI,
    recorded as failed, and nothing downstream runs for that day until the feed is re-delivered.
    """
    feed = simulator.world().raw_feed(date.fromisoformat(context.partition_key))
    if feed is None:
        raise SourceMissing(f"the raw trips feed for {context.partition_key} never arrived; re-run this "
                            "partition once the vendor re-delivers it")
    if "passenger_count" in feed:
        feed["passenger_count"] = feed["passenger_count"].astype("Int64")  # keep missing as null
    return feed


@component(
    partitions_def=daily,
    lineage_keys={"raw_trips": "trip_id"},
    owner="team:data-eng",
    group_name="etl",
    tags={"layer": "silver"},
    checks=[
        # Invalid rows are kept aside in cleaned_trips__quarantine, with the rules they broke.
        Expression("positive_distance", "distance_km > 0", quarantine=True, max_fail_rate=0.01),
        Expression("positive_duration", "duration_min > 0", quarantine=True, max_fail_rate=0.01),
        Expression("positive_fare", "fare_amount > 0", quarantine=True, max_fail_rate=0.01),
        NotNull("passenger_count", quarantine=True, max_fail_rate=0.01),
        # Infinite or NaN amounts (a sentinel, a division upstream) are set aside, never featurised.
        Finite("fare_amount", quarantine=True, max_fail_rate=0.01),
        Finite("distance_km", quarantine=True, max_fail_rate=0.01),
        # A trip delivered twice keeps its first row; the copies are kept aside with the reason.
        Unique("trip_id", quarantine=True, max_fail_rate=0.01),
        # Not blocking in the reference pipeline, so the demo's bad ETL day has predictions to
        # trace; in production make it blocking=True.
        Range("fare_amount", 2.5, 400, max_fail_rate=0.01, runbook_url=runbook("fare-range")),
        AllowedValues("payment_type", ["card", "cash", "app"]),
        RowCountVsHistory(tolerance=0.35, window=7),
    ],
)
def cleaned_trips(context: dg.AssetExecutionContext, raw_trips: DataFrame,
                  simulator: TripSimulatorResource) -> DataFrame:
    """Typed, validated trips: one row per trip with a positive distance, fare and duration.

    Rows that break a validity rule are not dropped: they go to ``cleaned_trips__quarantine``
    with the names of the rules they broke (declared below, evaluated by the recorder).
    """
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
    if simulator.world().faults.active("etl_bug", day):
        # Injected fault: a release that switched fares to cents in this ETL step.
        df = df.withColumn("fare_amount", F.round(F.col("fare_amount") * 100, 0))
    return df
