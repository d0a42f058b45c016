"""SLAs declared per component: the conditions worth waking someone for.

- :class:`MetricSLA` - a metric over a rolling window, e.g. "recall >= 0.80 over the last 3
  labelled days" (only days whose label coverage is high enough count: a day with 5% of its
  labels in says nothing yet);
- :class:`ReadyBy` - a partition's output exists by a deadline, e.g. "predictions ready by
  06:00 the next day" (a partition that never arrived is a breach, not an exception);
- :class:`VolumeVsWeekday` - rows within ±x% of the same weekday in recent weeks.

Every evaluation is stored in ``audit.sla_evaluations``; only breaches reach the alert policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd

from tracelake.lineage import Lakehouse
from tracelake.lineage.record.runid import new_run_id
from tracelake.monitors.alerts.manager import AlertPolicy
from tracelake.monitors.audit_tables import SLA_EVALUATIONS
from tracelake.monitors.metrics.history import window_metric

__all__ = ["SLA_EVALUATIONS", "MetricSLA", "ReadyBy", "SLAResult", "VolumeVsWeekday", "record_evaluations"]



@dataclass
class SLAResult:
    sla: str
    component: str
    breached: bool
    evaluable: bool
    observed: float | None
    threshold: float | None
    message: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _day(ts: Any) -> date:
    return pd.Timestamp(ts).date()


@dataclass(frozen=True)
class MetricSLA:
    name: str
    component: str
    metric: str
    minimum: float | None = None
    maximum: float | None = None
    window_days: int = 7
    slice_key: str = "all"
    slice_value: str = "all"
    min_coverage: float = 0.5
    min_days: int | None = None
    policy: AlertPolicy | None = None
    description: str = ""

    def evaluate(self, lake: Lakehouse, now: datetime) -> SLAResult:
        values = window_metric(lake, self.component, self.metric, slice_key=self.slice_key, slice_value=self.slice_value)
        coverage = window_metric(lake, self.component, "label_coverage", slice_key=self.slice_key,
                                 slice_value=self.slice_value)
        threshold = self.minimum if self.minimum is not None else self.maximum
        if values.empty:
            return SLAResult(self.name, self.component, False, False, None, threshold, f"no {self.metric} recorded yet")
        frame = values.merge(coverage[["time", "model_version", "value"]].rename(columns={"value": "coverage"}),
                             on=["time", "model_version"], how="left")
        frame = frame[(frame["coverage"].fillna(0) >= self.min_coverage) & (frame["time"] < pd.Timestamp(now))]
        if frame.empty:
            return SLAResult(self.name, self.component, False, False, None, threshold,
                             f"no day has {self.min_coverage:.0%} of its labels yet")
        end = frame["time"].max()
        start = end - pd.Timedelta(days=self.window_days - 1)
        window = frame[frame["time"] >= start]
        need = self.min_days or max(1, (self.window_days + 1) // 2)
        days = window["time"].nunique()
        if days < need:
            return SLAResult(self.name, self.component, False, False, None, threshold,
                             f"only {days} labelled day(s) in the window (need {need})")
        observed = float(window.groupby("time")["value"].mean().mean())
        low = self.minimum is not None and observed < self.minimum
        high = self.maximum is not None and observed > self.maximum
        bound = f">= {self.minimum:g}" if self.minimum is not None else f"<= {self.maximum:g}"
        msg = (f"{self.metric} of {self.component} over {_day(start)}..{_day(end)} is {observed:.3f} "
               f"(SLA {bound}, {days} labelled days)")
        return SLAResult(self.name, self.component, bool(low or high), True, observed, threshold, msg,
                         start.to_pydatetime(), (end + pd.Timedelta(days=1)).to_pydatetime(),
                         {"daily": {str(_day(t)): float(v) for t, v in window.groupby("time")["value"].mean().items()}})


@dataclass(frozen=True)
class ReadyBy:
    """Partition D's output must exist by ``hour:minute`` UTC, ``days_after`` days after D.

    ``clock="wall"`` also requires the run to have *finished* before the deadline; the
    simulated demo uses ``clock="partition"``, where only existence at evaluation time counts
    (its runs happen months after their simulated dates)."""

    name: str
    component: str
    hour: int = 6
    minute: int = 0
    days_after: int = 1
    clock: str = "wall"
    first_partition: str | None = None
    policy: AlertPolicy | None = None
    description: str = ""

    def evaluate(self, lake: Lakehouse, now: datetime) -> SLAResult:
        runs = lake.store.component_runs(include_open=False)
        mine = runs[runs["component"] == self.component] if not runs.empty else runs
        parts = sorted(p for p in mine["partition_key"].dropna()) if not mine.empty else []
        first = self.first_partition or (parts[0] if parts else None)
        if first is None:
            return SLAResult(self.name, self.component, False, False, None, None, "no partition produced yet")
        due_day = (now - timedelta(days=self.days_after)).date()
        deadline = datetime.combine(due_day + timedelta(days=self.days_after), time(self.hour, self.minute), UTC)
        if deadline > now:
            due_day -= timedelta(days=1)
            deadline -= timedelta(days=1)
        if due_day < date.fromisoformat(first[:10]):
            return SLAResult(self.name, self.component, False, False, None, None, "nothing due yet")
        key = due_day.isoformat()
        done = mine[(mine["partition_key"] == key) & (mine["status"] == "succeeded")]
        if self.clock == "wall":
            done = done[done["ended_at"] <= pd.Timestamp(deadline)]
        breached = done.empty
        skipped = mine[(mine["partition_key"] == key) & (mine["status"].isin(["skipped", "failed"]))]
        why = ""
        if breached and not skipped.empty:
            why = f" (run {skipped.iloc[-1]['run_id']} {skipped.iloc[-1]['status']}: {skipped.iloc[-1]['error_message']})"
        msg = (f"{self.component} for {key} {'not ready' if breached else 'ready'} by "
               f"{deadline:%Y-%m-%d %H:%M} UTC{why}")
        return SLAResult(self.name, self.component, breached, True, 0.0 if breached else 1.0, 1.0, msg,
                         datetime.combine(due_day, time(0), UTC), deadline)


@dataclass(frozen=True)
class VolumeVsWeekday:
    name: str
    component: str
    tolerance: float = 0.3
    weeks: int = 4
    min_weeks: int = 1
    policy: AlertPolicy | None = None
    description: str = ""

    def evaluate(self, lake: Lakehouse, now: datetime) -> SLAResult:
        runs = lake.store.component_runs(include_open=False)
        mine = runs[(runs["component"] == self.component) & (runs["status"] == "succeeded")] if not runs.empty else runs
        mine = mine[mine["partition_key"].notna() & (mine["partition_key"] < now.date().isoformat())]
        if mine.empty:
            return SLAResult(self.name, self.component, False, False, None, self.tolerance, "no partitions yet")
        by_day = mine.sort_values("run_id").drop_duplicates("partition_key", keep="last").set_index("partition_key")
        latest = max(by_day.index)
        d = date.fromisoformat(latest[:10])
        peers = [(d - timedelta(weeks=w)).isoformat() for w in range(1, self.weeks + 1)]
        history = [int(by_day.at[p, "output_rows"]) for p in peers if p in by_day.index]
        rows = int(by_day.at[latest, "output_rows"])
        if len(history) < self.min_weeks:
            return SLAResult(self.name, self.component, False, False, rows, self.tolerance,
                             f"{latest}: {rows} rows; no earlier {d:%A} to compare with")
        mean = sum(history) / len(history)
        change = (rows - mean) / mean if mean else 0.0
        return SLAResult(self.name, self.component, abs(change) > self.tolerance, True, change, self.tolerance,
                         f"{self.component} {latest} ({d:%A}): {rows} rows vs {mean:.0f} on recent {d:%A}s "
                         f"({change:+.0%}; SLA ±{self.tolerance:.0%})", details={"history": history})


def record_evaluations(lake: Lakehouse, results: list[SLAResult], as_of: datetime) -> None:
    import json

    lake.journal.append_many(SLA_EVALUATIONS, [(eid, {
        "evaluation_id": eid, "sla": r.sla, "component": r.component, "breached": r.breached,
        "evaluable": r.evaluable, "observed_value": r.observed, "threshold_value": r.threshold, "message": r.message,
        "window_start": r.window_start, "window_end": r.window_end, "as_of": as_of,
        "details_json": json.dumps(r.details, default=str) if r.details else None,
    }) for eid, r in ((new_run_id(), r) for r in results)])
