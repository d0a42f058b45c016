"""ML metrics declared with a prediction component, computed when the labels exist.

Labels arrive days after predictions, and some never do. A :class:`LabelledPredictions`
declaration says how to join a prediction table to its labels (key, label, score, prediction,
time column, model version, slices); :func:`evaluate_window` computes the declared metrics per
time unit, model version and slice from whatever labels have arrived, with the label coverage
next to each figure. An evaluation run re-computes its whole window every day, so a day's
figures are revised as its late labels land; the newest computation of a window is current.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["METRICS", "LabelledPredictions", "classification_metrics", "evaluate_window", "metric_rows"]

METRICS = ("n_predictions", "n_labelled", "label_coverage", "precision", "recall", "roc_auc", "log_loss",
           "calibration_error", "positive_rate", "observed_rate", "mean_score", "prediction_bias")


@dataclass(frozen=True)
class LabelledPredictions:
    key: str
    label: str
    score: str
    prediction: str
    time: str
    model_version: str = "model_version"
    slices: tuple[str, ...] = ()
    metrics: tuple[str, ...] = METRICS


def _calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() * abs(p[mask].mean() - y[mask].mean())
    return float(total / len(y))


def classification_metrics(y: np.ndarray, p: np.ndarray, yhat: np.ndarray, n_predictions: int) -> dict[str, float | None]:
    """Metrics of one group; None where a metric is undefined (e.g. AUC with one class)."""
    from sklearn.metrics import log_loss, precision_score, recall_score, roc_auc_score

    n = len(y)
    out: dict[str, float | None] = {"n_predictions": float(n_predictions), "n_labelled": float(n),
                                    "label_coverage": n / n_predictions if n_predictions else None}
    if n == 0:
        return {**out, **{m: None for m in METRICS if m not in out}}
    out.update({
        "precision": float(precision_score(y, yhat, zero_division=0)) if yhat.any() else None,
        "recall": float(recall_score(y, yhat, zero_division=0)) if y.any() else None,
        "roc_auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None,
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
        "calibration_error": _calibration_error(y, p),
        "positive_rate": float(yhat.mean()),
        "observed_rate": float(y.mean()),
        "mean_score": float(p.mean()),
        # Prediction bias ("Hidden Technical Debt"): mean predicted rate minus observed rate.
        "prediction_bias": float(p.mean() - y.mean()),
    })
    return out


def evaluate_window(predictions: pd.DataFrame, labels: pd.DataFrame, spec: LabelledPredictions) -> pd.DataFrame:
    """One row per (time, model version, slice key, slice value) with every declared metric."""
    spec_cols = [spec.key, spec.score, spec.prediction, spec.time, spec.model_version, *spec.slices]
    preds = predictions[spec_cols].copy()
    preds[spec.time] = preds[spec.time].astype(str)
    labelled = preds.merge(labels[[spec.key, spec.label]].drop_duplicates(spec.key), on=spec.key, how="left")
    rows = []
    for (when, version), group in labelled.groupby([spec.time, spec.model_version]):
        groups = [("all", "all", group)] + [(k, str(v), g) for k in spec.slices for v, g in group.groupby(k)]
        for key, value, g in groups:
            have = g[g[spec.label].notna()]
            m = classification_metrics(have[spec.label].to_numpy().astype(int), have[spec.score].to_numpy(dtype=float),
                                       have[spec.prediction].to_numpy().astype(int), len(g))
            rows.append({"time": when, "model_version": str(version), "slice_key": key, "slice_value": value,
                         **{k: m.get(k) for k in spec.metrics}})
    return pd.DataFrame(rows)


def metric_rows(frame: pd.DataFrame, spec: LabelledPredictions, *, model_name: str | None = None) -> list[dict[str, Any]]:
    """Long-format rows for ``audit.metrics`` (one per metric), windows of one day."""
    out = []
    for rec in frame.to_dict("records"):
        start = datetime.combine(date.fromisoformat(str(rec["time"])[:10]), time(0), tzinfo=UTC)
        for metric in spec.metrics:
            value = rec.get(metric)
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            out.append({"metric": metric, "value": float(value), "window_start": start,
                        "window_end": start + timedelta(days=1), "slice_key": rec["slice_key"],
                        "slice_value": rec["slice_value"], "model_name": model_name,
                        "model_version": rec["model_version"]})
    return out
