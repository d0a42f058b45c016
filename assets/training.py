"""Weekly retraining: the training set of the two weeks before, and the registered tip model."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tracelake.lineage import ComponentRun, component
from tracelake.monitors.checks import InputFreshness, RowCountVsHistory

from .features import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES
from .frames import spark_frame
from .partitions import previous_two_weeks, weekly

__all__ = ["MODEL_NAME", "MODEL_TABLE_SCHEMA", "build_model", "tip_model", "training_set"]

MODEL_NAME = "tip_model"


@component(
    partitions_def=weekly,
    ins={
        "trip_features": dg.AssetIn(partition_mapping=previous_two_weeks),
        "trip_labels": dg.AssetIn(partition_mapping=previous_two_weeks),
    },
    lineage_keys={"trip_features": "trip_id", "trip_labels": "trip_id"},
    owner="team:ml",
    group_name="training",
    checks=[InputFreshness(max_missing_partitions=0), RowCountVsHistory(tolerance=0.5, window=4, min_history=2)],
)
def training_set(trip_features: DataFrame, trip_labels: DataFrame) -> DataFrame:
    """Features of the previous two weeks joined with the tip labels that had arrived by then."""
    labels = trip_labels.select("trip_id", "tipped", "trip_date", "label_date")
    return trip_features.join(labels, "trip_id", "inner").withColumn("label", F.col("tipped").cast("int"))


def build_model():
    """The tip classifier: one-hot categoricals + gradient-boosted trees."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL_FEATURES),
        ("num", "passthrough", NUMERIC_FEATURES),
    ])
    return Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08,
                                                                          random_state=0))])


def _trusted_types(model) -> list[str]:
    """Types skops must be told to trust when loading this model.

    MLflow saves scikit-learn models with skops (no arbitrary code on load); a model we just
    trained ourselves holds only sklearn types, which we list explicitly so loading stays safe.
    """
    import skops.io as sio

    return sio.get_untrusted_types(data=sio.dumps(model))


MODEL_TABLE_SCHEMA = T.StructType([
    T.StructField("model_name", T.StringType(), False),
    T.StructField("model_version", T.StringType(), False),
    T.StructField("model_uri", T.StringType(), False),
    T.StructField("mlflow_run_id", T.StringType(), False),
    T.StructField("trained_for_week", T.StringType(), False),
    T.StructField("training_rows", T.LongType(), False),
    T.StructField("val_auc", T.DoubleType(), True),
    T.StructField("val_log_loss", T.DoubleType(), True),
    T.StructField("threshold", T.DoubleType(), False),
    T.StructField("features_json", T.StringType(), False),
])


@component(
    partitions_def=weekly,
    owner="team:ml",
    group_name="training",
    kinds={"sklearn", "mlflow", "delta"},
)
def tip_model(context: dg.AssetExecutionContext, training_set: DataFrame, run: ComponentRun) -> DataFrame:
    """The weekly tip model, trained on this week's training set and registered in MLflow.

    The output row names the registered model version, so every prediction's lineage reaches
    the model, its MLflow run and the exact training set version it learned from.
    """
    from sklearn.metrics import log_loss, precision_score, recall_score, roc_auc_score

    data: pd.DataFrame = training_set.select(*FEATURE_COLUMNS, "label", "trip_date").toPandas()
    if len(data) < 200 or data["label"].nunique() < 2:
        raise ValueError(
            f"training set for week {context.partition_key} has {len(data)} labelled rows "
            f"({data['label'].nunique() if len(data) else 0} classes); need >= 200 rows of both classes. "
            "Materialise trip_features and trip_labels for the two weeks before first."
        )
    days = sorted(data["trip_date"].unique())
    cutoff = days[int(len(days) * 0.8)] if len(days) > 1 else days[0]
    train, val = data[data["trip_date"] < cutoff], data[data["trip_date"] >= cutoff]
    if train.empty or val.empty:
        rng = np.random.default_rng(0)
        mask = rng.random(len(data)) < 0.8
        train, val = data[mask], data[~mask]
    model = build_model().fit(train[FEATURE_COLUMNS], train["label"])
    proba = model.predict_proba(val[FEATURE_COLUMNS])[:, 1]
    pred = (proba >= 0.5).astype(int)
    metrics = {
        "train_rows": float(len(train)),
        "val_rows": float(len(val)),
        "val_auc": float(roc_auc_score(val["label"], proba)),
        "val_log_loss": float(log_loss(val["label"], proba, labels=[0, 1])),
        "val_precision": float(precision_score(val["label"], pred, zero_division=0)),
        "val_recall": float(recall_score(val["label"], pred, zero_division=0)),
        "positive_rate": float(data["label"].mean()),
    }
    run.log_metrics(metrics)
    # Refit on all labelled rows for the registered model.
    final = build_model().fit(data[FEATURE_COLUMNS], data["label"])
    example = data[FEATURE_COLUMNS].head(5).astype(dict.fromkeys(NUMERIC_FEATURES, "float64"))
    registered = run.log_model(final, MODEL_NAME, input_example=example,
                               skops_trusted_types=_trusted_types(final))
    row = pd.DataFrame([{
        "model_name": MODEL_NAME,
        "model_version": registered["version"],
        "model_uri": registered["uri"],
        "mlflow_run_id": registered["mlflow_run_id"],
        "trained_for_week": context.partition_key,
        "training_rows": len(data),
        "val_auc": metrics["val_auc"],
        "val_log_loss": metrics["val_log_loss"],
        "threshold": 0.5,
        "features_json": json.dumps(FEATURE_COLUMNS),
    }])
    return spark_frame(run.spark, row, MODEL_TABLE_SCHEMA)
