"""The daily monitoring job: SLAs, anomaly monitors and blocked pipelines, with alerts."""

from __future__ import annotations

import dagster as dg

from tracelake.assets.monitoring import BLOCKED, MONITORS, SLAS
from tracelake.monitors.alerts.monitoring_checks import build_monitoring_checks

__all__ = ["monitoring_checks", "monitoring_job", "monitoring_schedule"]

monitoring_checks = build_monitoring_checks(SLAS, MONITORS, BLOCKED)

monitoring_job = dg.define_asset_job(
    "monitoring", selection=dg.AssetSelection.checks(monitoring_checks),
    description="Evaluate SLAs and anomaly monitors after the day's pipeline; open or resolve alerts.",
)

# 06:30: after inference (03:00) and evaluation (05:00), and after the 06:00 readiness deadline.
monitoring_schedule = dg.ScheduleDefinition(job=monitoring_job, cron_schedule="30 6 * * *")
