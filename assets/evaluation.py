"""Daily evaluation as late labels arrive: precision, recall, AUC per trip day and slice."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from tracelake.lineage import ComponentRun, component

from .frames import spark_frame
from .partitions import daily, previous_week_days

__all__ = ["model_evaluation", "EVALUATION_SCHEMA", "SLICES", "classification_metrics"]

SLICES = ("pickup_zone", "payment_type")

EVALUATION_SCHEMA = T.StructType([
    T.StructField("eval_date", T.StringType(), False),
    T.StructField("trip_date", T.StringType(), False),
    T.StructField("model_version", T.StringType(), False),
    T.StructField("slice_key", T.StringType(), False),
    T.StructField("slice_value", T.StringType(), False),
    T.StructField("n", T.LongType(), False),
    T.StructField("precision", T.DoubleType(), True),
    T.StructField("recall", T.DoubleType(), True),
    T.StructField("roc_auc", T.DoubleType(), True),
    T.StructField("log_loss", T.DoubleType(), True),
    T.StructField("predicted_positive_rate", T.DoubleType(), True),
    T.StructField("observed_tip_rate", T.DoubleType(), True),
    T.StructField("mean_tip_probability", T.DoubleType(), True),
])


def classification_metrics(y: np.ndarray, p: np.ndarray, yhat: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import log_loss, precision_score, recall_score, roc_auc_score

    both = len(np.unique(y)) == 2
    return {
        "n": int(len(y)),
        "precision": float(precision_score(y, yhat, zero_division=0)) if yhat.any() else None,
        "recall": float(recall_score(y, yhat, zero_division=0)) if y.any() else None,
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])) if len(y) else None,
        "predicted_positive_rate": float(yhat.mean()) if len(y) else None,
        "observed_tip_rate": float(y.mean()) if len(y) else None,
        "mean_tip_probability": float(p.mean()) if len(y) else None,
    }


@component(
    partitions_def=daily,
    ins={"tip_predictions": dg.AssetIn(partition_mapping=previous_week_days)},
    # Output rows are aggregates per trip day and model version: that is their key upstream.
    lineage_keys={"tip_predictions": ["trip_date=pickup_date", "model_version"], "trip_labels": ["trip_date"]},
    optional_output=True,
    skip_if_inputs_missing=True,  # nothing to evaluate before the first predictions exist
    owner="team:ml",
    group_name="evaluation",
)
def model_evaluation(context: dg.AssetExecutionContext, trip_labels: DataFrame, tip_predictions: DataFrame,
                     run: ComponentRun):
    """Joins the labels that arrived today with last week's predictions and scores them.

    One row per (trip day, model version, slice); the overall figures of the day are also
    logged as this run's metrics (and so appear in MLflow and as Dagster metadata).
    """
    joined = tip_predictions.join(trip_labels.select("trip_id", "tipped", "trip_date"), "trip_id", "inner")
    data = joined.select("trip_date", "model_version", "pickup_zone", "payment_type", "tip_probability",
                         "predicted_tip", "tipped").toPandas()
    if data.empty:
        return None
    rows = []
    for (trip_date, version), group in data.groupby(["trip_date", "model_version"]):
        slices = [("all", "all", group)]
        for key in SLICES:
            slices += [(key, str(value), g) for value, g in group.groupby(key)]
        for key, value, g in slices:
            m = classification_metrics(g["tipped"].to_numpy().astype(int), g["tip_probability"].to_numpy(),
                                       g["predicted_tip"].to_numpy().astype(int))
            rows.append({"eval_date": context.partition_key, "trip_date": trip_date, "model_version": version,
                         "slice_key": key, "slice_value": value, **m})
    overall = classification_metrics(data["tipped"].to_numpy().astype(int), data["tip_probability"].to_numpy(),
                                     data["predicted_tip"].to_numpy().astype(int))
    run.log_metrics({k: v for k, v in overall.items() if v is not None})
    return spark_frame(run.spark, pd.DataFrame(rows), EVALUATION_SCHEMA)
