"""Metric history: every figure Tracelake stores, as a time series.

Two sources, one shape (time -> value):
- ``audit.metrics``: metrics over windows and slices (late-label evaluation, imported MLflow
  metrics); when a window was computed more than once (late labels), the newest computation wins;
- ``audit.component_runs``: per-run metrics (``run.log_metric``, action-limit values) and the
  built-ins ``output_rows`` and ``duration_s``, indexed by the run's partition (or start time).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from tracelake.lineage import METRICS, Lakehouse
from tracelake.lineage.record.runid import new_run_id

__all__ = ["import_mlflow_metrics", "metric_names", "run_metric", "window_metric"]


def _as_time(partition: Any, started: Any) -> pd.Timestamp:
    try:
        return pd.Timestamp(str(partition)[:10], tz="UTC")
    except (ValueError, TypeError):
        return pd.Timestamp(started)


def window_metric(lake: Lakehouse, component: str, metric: str, *, slice_key: str = "all", slice_value: str = "all",
                  model_version: str | None = None, source: str | None = None) -> pd.DataFrame:
    """Columns: time, value, model_version, computed_at, run_id (newest computation per window)."""
    frame = lake.store.read(METRICS)
    if frame.empty:
        return pd.DataFrame(columns=["time", "value", "model_version", "computed_at", "run_id"])
    hit = frame[(frame["component"] == component) & (frame["metric"] == metric) & (frame["slice_key"] == slice_key)
                & (frame["slice_value"].astype(str) == str(slice_value))]
    if model_version is not None:
        hit = hit[hit["model_version"] == str(model_version)]
    if source is not None:
        hit = hit[hit["source"] == source]
    hit = hit.sort_values("computed_at").drop_duplicates(["window_start", "model_version"], keep="last")
    out = hit.rename(columns={"window_start": "time"})[["time", "value", "model_version", "computed_at", "run_id"]]
    return out.sort_values("time").reset_index(drop=True)


def run_metric(lake: Lakehouse, component: str, metric: str) -> pd.DataFrame:
    """Columns: time, value, run_id, partition_key - one point per succeeded run."""
    runs = lake.store.component_runs(include_open=False)
    runs = runs[(runs["component"] == component) & (runs["status"] == "succeeded")] if not runs.empty else runs
    rows = []
    for rec in runs.to_dict("records"):
        if metric == "output_rows":
            value = rec.get("output_rows")
        elif metric == "duration_s":
            value = None if rec.get("duration_ms") is None else rec["duration_ms"] / 1000
        else:
            value = (rec.get("metrics") or {}).get(metric)
        if value is None or value != value:
            continue
        rows.append({"time": _as_time(rec.get("partition_key"), rec.get("started_at")), "value": float(value),
                     "run_id": rec["run_id"], "partition_key": rec.get("partition_key")})
    frame = pd.DataFrame(rows, columns=["time", "value", "run_id", "partition_key"])
    # A re-run of a partition replaces the earlier figure for that time.
    return frame.sort_values(["time", "run_id"]).drop_duplicates("time", keep="last").reset_index(drop=True)


def metric_names(lake: Lakehouse, component: str) -> dict[str, list[str]]:
    frame = lake.store.read(METRICS)
    window = sorted(set(frame.loc[frame["component"] == component, "metric"])) if not frame.empty else []
    runs = lake.store.component_runs(include_open=False)
    per_run: set[str] = {"output_rows", "duration_s"}
    if not runs.empty:
        for m in runs.loc[runs["component"] == component, "metrics"]:
            per_run.update((m or {}).keys())
    return {"window": window, "run": sorted(per_run)}


def import_mlflow_metrics(lake: Lakehouse, experiment: str, *, component: str | None = None,
                          metrics: list[str] | None = None) -> int:
    """Copy the metric history of an MLflow experiment's runs into ``audit.metrics``
    (source ``mlflow``) so SLAs and anomaly detection apply to it. Already imported points are
    skipped, so importing again only adds what is new."""
    client = lake.mlflow.client
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"no MLflow experiment named {experiment!r}")
    component = component or (exp.tags or {}).get("tracelake.component") or experiment
    existing = lake.store.read(METRICS)
    seen = set()
    if not existing.empty:
        mine = existing[(existing["source"] == "mlflow") & (existing["component"] == component)]
        seen = set(zip(mine["slice_value"], mine["metric"], mine["window_start"], strict=True))
    rows = []
    now = datetime.now(UTC)
    for run in client.search_runs([exp.experiment_id], max_results=50_000):
        names = metrics or list(run.data.metrics)
        for name in names:
            for point in client.get_metric_history(run.info.run_id, name):
                when = datetime.fromtimestamp(point.timestamp / 1000, tz=UTC)
                key = (run.info.run_id, name, pd.Timestamp(when))
                if key in seen:
                    continue
                seen.add(key)
                rows.append({"metric_id": new_run_id(), "run_id": run.data.tags.get("tracelake.run_id"),
                             "component": component, "metric": name, "value": float(point.value),
                             "window_start": when, "window_end": when, "slice_key": "mlflow_run",
                             "slice_value": run.info.run_id, "source": "mlflow", "computed_at": now})
    if rows:
        lake.recorder.record_metrics(rows)
    return len(rows)
