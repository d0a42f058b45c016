"""Anomaly rules and metric computations against known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, precision_score, recall_score, roc_auc_score

from tracelake.monitors.metrics.anomaly import RollingBand, SeasonalBand, StaticThreshold, detect
from tracelake.monitors.metrics.evaluation import LabelledPredictions, classification_metrics, evaluate_window


def _weekly(n=70, seed=0):
    idx = pd.date_range("2026-01-05", periods=n, freq="D", tz="UTC")
    pattern = np.array([1.0, 1.0, 1.0, 1.05, 1.2, 1.15, 0.75])[idx.dayofweek]
    return pd.Series(2000 * pattern + np.random.default_rng(seed).normal(0, 25, n), index=idx)


def test_seasonal_rule_respects_weekdays_and_finds_only_the_injected_drop():
    s = _weekly()
    s.iloc[50] *= 0.6
    found = detect(s, [SeasonalBand()])
    assert [a.time for a in found] == [s.index[50]]
    # A rolling rule without seasonality mistakes every weekend for an anomaly.
    assert len(detect(s, [RollingBand(window=14, k=3)])) > 5


def test_a_bad_point_does_not_become_the_baseline_for_the_next():
    s = _weekly()
    s.iloc[40:43] = s.iloc[40:43] * 3  # three bad days in a row
    found = {a.time for a in detect(s, [SeasonalBand()])}
    assert set(s.index[40:43]) <= found
    assert s.index[47] not in found  # the week after: judged against the clean history


def test_static_threshold_and_rolling_band():
    s = pd.Series([0.01, 0.02, -0.01, 0.2, 0.0], index=pd.date_range("2026-01-01", periods=5, tz="UTC"))
    assert [a.value for a in detect(s, [StaticThreshold(-0.1, 0.1)])] == [0.2]
    flat = pd.Series([5.0] * 10 + [9.0], index=pd.date_range("2026-01-01", periods=11, tz="UTC"))
    (a,) = detect(flat, [RollingBand(window=10, k=3, min_history=5)])
    assert a.value == 9.0 and a.expected == 5.0


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.6 + rng.random(500) * 0.5, 0, 1)
    yhat = (p >= 0.5).astype(int)
    m = classification_metrics(y, p, yhat, 600)
    assert m["precision"] == pytest.approx(precision_score(y, yhat))
    assert m["recall"] == pytest.approx(recall_score(y, yhat))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["log_loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6)))
    assert m["label_coverage"] == pytest.approx(500 / 600)
    assert m["prediction_bias"] == pytest.approx(p.mean() - y.mean())


def test_evaluate_window_per_day_model_and_slice_with_partial_labels():
    preds = pd.DataFrame({"id": range(8), "score": [0.9, 0.8, 0.2, 0.1, 0.7, 0.6, 0.3, 0.4],
                          "pred": [1, 1, 0, 0, 1, 1, 0, 0], "day": ["d1"] * 4 + ["d2"] * 4, "mv": "1",
                          "zone": ["a", "b"] * 4})
    labels = pd.DataFrame({"id": [0, 1, 2, 3, 4], "y": [1, 0, 0, 1, 1]})  # d2 mostly unlabelled yet
    spec = LabelledPredictions(key="id", label="y", score="score", prediction="pred", time="day", model_version="mv",
                               slices=("zone",))
    out = evaluate_window(preds, labels, spec).set_index(["time", "slice_key", "slice_value"])
    assert out.loc[("d1", "all", "all"), "recall"] == pytest.approx(0.5)
    assert out.loc[("d1", "all", "all"), "precision"] == pytest.approx(0.5)
    assert out.loc[("d2", "all", "all"), "label_coverage"] == pytest.approx(0.25)
    assert out.loc[("d1", "zone", "a"), "n_labelled"] == 2
