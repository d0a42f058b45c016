"""One monitoring pass: evaluate SLAs, watch metrics for anomalies, watch blocking test
failures, and feed every verdict to the alert policies. Scheduled daily by ``jobs/monitoring``.

The alert-fatigue invariant (docs/architecture.md) holds here: SLA breaches and stopped pipelines page; anomalies and
declared-test results are stored (and shown) but alert only when their monitor has a policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from tracelake.lineage import CHECK_RESULTS, Lakehouse
from tracelake.lineage.record.runid import new_run_id
from tracelake.monitors.alerts.manager import AlertManager, AlertPolicy, DeliveryReport
from tracelake.monitors.alerts.sla import SLAResult, record_evaluations
from tracelake.monitors.audit_tables import ANOMALIES
from tracelake.monitors.metrics.anomaly import Anomaly, detect
from tracelake.monitors.metrics.history import run_metric, window_metric

__all__ = ["ANOMALIES", "BlockedPipelinePolicy", "MetricMonitor", "MonitoringReport", "stored_anomalies", "watch"]



@dataclass(frozen=True)
class MetricMonitor:
    """Anomaly rules over one metric's history: a per-run metric (``kind="run"``: output_rows,
    duration_s, anything logged with ``run.log_metric``) or a window metric (``kind="window"``:
    evaluation metrics, imported MLflow metrics)."""

    name: str
    component: str
    metric: str
    rules: tuple = ()
    kind: str = "run"
    slice_key: str = "all"
    slice_value: str = "all"
    policy: AlertPolicy | None = None   # None: anomalies are stored, not alerted

    def series(self, lake: Lakehouse) -> pd.Series:
        if self.kind == "window":
            frame = window_metric(lake, self.component, self.metric, slice_key=self.slice_key,
                                  slice_value=self.slice_value)
            frame = frame.groupby("time")["value"].mean().reset_index()
        else:
            frame = run_metric(lake, self.component, self.metric)
        return pd.Series(frame["value"].to_numpy(dtype=float), index=pd.DatetimeIndex(pd.to_datetime(frame["time"], utc=True)))


@dataclass(frozen=True)
class BlockedPipelinePolicy:
    """Alert when the newest run of a component failed a *blocking* declared test (the pipeline
    stopped there); resolve when a newer run passes them."""

    policy: AlertPolicy
    components: tuple[str, ...] = ()


@dataclass
class MonitoringReport:
    as_of: datetime
    slas: list[SLAResult] = field(default_factory=list)
    anomalies: list[tuple[MetricMonitor, Anomaly]] = field(default_factory=list)
    blocked: dict[str, list[str]] = field(default_factory=dict)
    alert_actions: list[tuple[str, str, str]] = field(default_factory=list)   # (policy, component, action)
    deliveries: list[DeliveryReport] = field(default_factory=list)  # retries first, then this pass' pages


def stored_anomalies(lake: Lakehouse) -> pd.DataFrame:
    return lake.store.read(ANOMALIES)


def _blocking_failures(lake: Lakehouse, components: Sequence[str]) -> dict[str, list[str]]:
    checks = lake.store.read(CHECK_RESULTS)
    out: dict[str, list[str]] = {c: [] for c in components}
    if checks.empty:
        return out
    for component in components:
        mine = checks[checks["component"] == component]
        if mine.empty:
            continue
        latest_run = mine.sort_values("evaluated_at")["run_id"].iloc[-1]
        failed = mine[(mine["run_id"] == latest_run) & mine["blocking"].astype(bool) & ~mine["passed"].astype(bool)]
        out[component] = [f"{r['check_name']}: {r['observed_text']}" for r in failed.to_dict("records")]
    return out


def watch(lake: Lakehouse, *, slas: Sequence[Any] = (), monitors: Sequence[MetricMonitor] = (),
          blocked: BlockedPipelinePolicy | None = None, manager: AlertManager | None = None,
          as_of: datetime | None = None) -> MonitoringReport:
    as_of = as_of or datetime.now(UTC)
    manager = manager or AlertManager(lake)
    report = MonitoringReport(as_of)
    # Pages first: retry what earlier passes could not deliver; then evaluate, recording this
    # pass' pages in the outbox and sending them together at the end (also if evaluation fails).
    first = len(manager.reports)
    manager.deliver_pending()
    try:
        with manager.deferred_delivery():
            _evaluate(lake, report, slas, monitors, blocked, manager, as_of)
    finally:
        report.deliveries = manager.reports[first:]
    return report


def _evaluate(lake: Lakehouse, report: MonitoringReport, slas: Sequence[Any], monitors: Sequence[MetricMonitor],
              blocked: BlockedPipelinePolicy | None, manager: AlertManager, as_of: datetime) -> None:
    for sla in slas:
        result = sla.evaluate(lake, as_of)
        report.slas.append(result)
        if result.evaluable and sla.policy is not None:
            action = manager.observe(sla.policy, sla.component, result.breached, result.message,
                                     observed=result.observed, threshold=result.threshold, when=as_of)
            report.alert_actions.append((sla.policy.name, sla.component, action))
    record_evaluations(lake, report.slas, as_of)

    known = stored_anomalies(lake)
    seen = set(zip(known["monitor"], known["time"], strict=True)) if not known.empty else set()
    new_rows = []
    for monitor in monitors:
        series = monitor.series(lake)
        series = series[series.index < pd.Timestamp(as_of)]
        found = detect(series, list(monitor.rules))
        for anomaly in found:
            report.anomalies.append((monitor, anomaly))
            if (monitor.name, pd.Timestamp(anomaly.time)) not in seen:
                new_rows.append({"anomaly_id": new_run_id(), "monitor": monitor.name, "component": monitor.component,
                                 "metric": monitor.metric, "slice": f"{monitor.slice_key}={monitor.slice_value}",
                                 "time": pd.Timestamp(anomaly.time).to_pydatetime(), "value": anomaly.value,
                                 "expected": anomaly.expected, "lower": anomaly.lower, "upper": anomaly.upper,
                                 "rule": anomaly.rule, "detected_at": as_of})
        if monitor.policy is not None and len(series):
            last_time = series.index.max()
            hit = [a for a in found if a.time == last_time]
            action = manager.observe(monitor.policy, monitor.component, bool(hit),
                                     f"{monitor.metric}: " + (hit[0].describe() if hit else "within its usual range"),
                                     observed=float(series.iloc[-1]), when=as_of)
            report.alert_actions.append((monitor.policy.name, monitor.component, action))
    if new_rows:
        lake.journal.append_many(ANOMALIES, [(r["anomaly_id"], r) for r in new_rows])

    if blocked is not None:
        report.blocked = _blocking_failures(lake, blocked.components)
        for component, failures in report.blocked.items():
            message = (f"{component} stopped the pipeline: " + "; ".join(failures)) if failures \
                else f"{component}: newest run passed its blocking tests"
            action = manager.observe(blocked.policy, component, bool(failures), message, when=as_of)
            report.alert_actions.append((blocked.policy.name, component, action))
