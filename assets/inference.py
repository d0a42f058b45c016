"""Daily batch inference with the newest registered model."""

from __future__ import annotations

import dagster as dg
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tracelake.lineage import ComponentRun, component
from tracelake.monitors.checks import ActionLimit, InputFreshness, Range, Unique
from tracelake.monitors.metrics.evaluation import LabelledPredictions

from .features import FEATURE_COLUMNS
from .partitions import daily, recent_models

__all__ = ["PREDICTION_SCHEMA", "TIP_METRICS", "tip_predictions"]

# The ML metrics declared for the predictions: computed by model_evaluation once labels arrive.
TIP_METRICS = LabelledPredictions(
    key="trip_id", label="tipped", score="tip_probability", prediction="predicted_tip", time="pickup_date",
    model_version="model_version", slices=("pickup_zone", "payment_type", "pickup_hour"),
)

PREDICTION_SCHEMA = T.StructType([
    T.StructField("trip_id", T.StringType(), False),
    T.StructField("pickup_date", T.DateType(), True),
    T.StructField("pickup_ts", T.TimestampType(), True),
    T.StructField("pickup_zone", T.StringType(), True),
    T.StructField("payment_type", T.StringType(), True),
    T.StructField("pickup_hour", T.IntegerType(), True),
    T.StructField("tip_probability", T.DoubleType(), False),
    T.StructField("predicted_tip", T.BooleanType(), False),
    T.StructField("model_name", T.StringType(), False),
    T.StructField("model_version", T.StringType(), False),
])


@component(
    partitions_def=daily,
    ins={"tip_model": dg.AssetIn(partition_mapping=recent_models)},
    lineage_keys={"trip_features": "trip_id", "tip_model": "model_version"},
    optional_output=True,
    skip_if_inputs_missing=["trip_features"],  # a day whose trips never arrived has nothing to score
    owner="team:ml",
    group_name="inference",
    kinds={"spark", "mlflow", "delta"},
    metadata={"tracelake/ml_metrics": ", ".join(TIP_METRICS.metrics), "tracelake/labels": "trip_labels.tipped"},
    checks=[
        Range("tip_probability", 0, 1),
        Unique("trip_id"),
        # Action limit: one day's batch may not move the share of predicted tippers by more than
        # 15 points against the last week; the rate is also logged as a metric with history.
        ActionLimit("positive_rate", "avg(CASE WHEN predicted_tip THEN 1.0 ELSE 0.0 END)", 0.15, window=7),
        InputFreshness(inputs=["trip_features"]),  # the 8-week model lookback is not a feed
    ],
)
def tip_predictions(trip_features: DataFrame, tip_model: DataFrame, run: ComponentRun) -> DataFrame:
    """Tip probability for every trip of the day, from the newest model trained before it."""
    latest = tip_model.orderBy(F.col("trained_for_week").desc(), F.col("model_version").cast("int").desc()).first()
    if latest is None:
        raise ValueError("no trained tip model in the last eight weeks; run the weekly training job first")
    model = run.load_model(latest["model_name"], latest["model_version"])
    threshold = float(latest["threshold"])
    name, version = latest["model_name"], latest["model_version"]

    def score(batches):
        for batch in batches:
            proba = model.predict_proba(batch[FEATURE_COLUMNS])[:, 1]
            yield pd.DataFrame({
                "trip_id": batch["trip_id"], "pickup_date": batch["pickup_date"], "pickup_ts": batch["pickup_ts"],
                "pickup_zone": batch["pickup_zone"], "payment_type": batch["payment_type"],
                "pickup_hour": batch["pickup_hour"].astype("int32"), "tip_probability": proba,
                "predicted_tip": proba >= threshold, "model_name": name, "model_version": version,
            })

    # Scored in Spark's Python workers, batch by batch: the same code scales past one machine.
    return trip_features.mapInPandas(score, PREDICTION_SCHEMA)
