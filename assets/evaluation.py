"""Late-label evaluation: every day, score the last week's predictions against every label that
has arrived so far, per trip day, model version and slice, revising earlier figures as more
labels land."""

from __future__ import annotations

import dagster as dg
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from tracelake.lineage import ComponentRun, component
from tracelake.monitors.metrics.evaluation import METRICS, evaluate_window, metric_rows

from .frames import spark_frame
from .inference import TIP_METRICS
from .partitions import daily, previous_week_days, recent_labels
from .training import MODEL_NAME

__all__ = ["EVALUATION_SCHEMA", "model_evaluation"]

EVALUATION_SCHEMA = T.StructType(
    [T.StructField("eval_date", T.StringType(), False), T.StructField("trip_date", T.StringType(), False),
     T.StructField("model_version", T.StringType(), False), T.StructField("slice_key", T.StringType(), False),
     T.StructField("slice_value", T.StringType(), False)]
    + [T.StructField(m, T.DoubleType(), True) for m in METRICS]
)


@component(
    partitions_def=daily,
    ins={"tip_predictions": dg.AssetIn(partition_mapping=previous_week_days),
         "trip_labels": dg.AssetIn(partition_mapping=recent_labels)},
    # Output rows are aggregates per trip day and model version: that is their key upstream.
    lineage_keys={"tip_predictions": ["trip_date=pickup_date", "model_version"], "trip_labels": ["trip_date"]},
    optional_output=True,
    skip_if_inputs_missing=["tip_predictions"],  # nothing to evaluate before the first predictions
    owner="team:ml",
    group_name="evaluation",
)
def model_evaluation(context: dg.AssetExecutionContext, tip_predictions: DataFrame, trip_labels: DataFrame,
                     run: ComponentRun):
    """The declared metrics of tip_predictions (precision, recall, ROC AUC, log loss, calibration,
    positive rate, prediction bias, label coverage) for each of the last seven trip days.

    Each run recomputes the whole window from all labels arrived by its day, so a trip day's
    figures are revised as late labels land (the newest evaluation of a day is current). The
    figures also go to ``audit.metrics`` for SLAs and anomaly detection.
    """
    spec = TIP_METRICS
    preds: pd.DataFrame = tip_predictions.select(spec.key, spec.score, spec.prediction, spec.time,
                                                 spec.model_version, *spec.slices).toPandas()
    if preds.empty:
        return None
    labels: pd.DataFrame = trip_labels.select(spec.key, spec.label).toPandas()
    frame = evaluate_window(preds, labels, spec)
    run.log_window_metrics(metric_rows(frame, spec, model_name=MODEL_NAME), component="tip_predictions",
                           source="evaluation")
    overall = frame[(frame["slice_key"] == "all")]
    covered = overall[overall["label_coverage"].fillna(0) > 0]
    if not covered.empty:
        latest = covered.sort_values("time").iloc[-1]
        run.log_metrics({f"latest_{k}": float(latest[k]) for k in ("recall", "precision", "roc_auc", "label_coverage")
                         if latest[k] is not None and latest[k] == latest[k]})
    out = frame.rename(columns={"time": "trip_date"})
    out.insert(0, "eval_date", context.partition_key)
    return spark_frame(run.spark, pd.DataFrame(out), EVALUATION_SCHEMA)
