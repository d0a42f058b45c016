"""Late labels: whether a trip was tipped reaches us days after the trip."""

from __future__ import annotations

from datetime import date

import dagster as dg
from pyspark.sql import types as T

from tracelake.lineage import ComponentRun, component
from tracelake.monitors.checks import Expression, Unique

from .frames import spark_frame
from .partitions import daily
from .resources import TripSimulatorResource

__all__ = ["LABEL_SCHEMA", "trip_labels"]

LABEL_SCHEMA = T.StructType([
    T.StructField("trip_id", T.StringType(), False),
    T.StructField("trip_date", T.StringType(), False),
    T.StructField("tipped", T.BooleanType(), False),
    T.StructField("tip_amount", T.DoubleType(), False),
    T.StructField("fare_amount", T.DoubleType(), False),
    T.StructField("label_date", T.StringType(), False),
])


@component(
    partitions_def=daily,
    owner="team:data-eng",
    group_name="ingestion",
    tags={"layer": "bronze"},
    checks=[
        Unique("trip_id"),
        # A relation between columns: a tip larger than three fares is a processor error.
        Expression("tip_at_most_3x_fare", "tip_amount <= fare_amount * 3", quarantine=True, max_fail_rate=0.01),
    ],
)
def trip_labels(context: dg.AssetExecutionContext, simulator: TripSimulatorResource, run: ComponentRun):
    """Tip outcomes that arrived on this day (normally for trips two days earlier).

    The partition is the *arrival* day, not the trip day: late or missing labels show up as a
    label_date far from trip_date, or as trips with no label at all.
    """
    frame = simulator.world().labels_arriving(date.fromisoformat(context.partition_key))
    return spark_frame(run.spark, frame, LABEL_SCHEMA)
