"""What the reference pipeline promises, and who gets woken up when it does not.

SLAs page; anomalies are stored and shown (they page only where a policy is attached); a
blocking test failure that stops the pipeline pages the data team.
"""

from __future__ import annotations

from tracelake.monitors.alerts.manager import AlertPolicy
from tracelake.monitors.alerts.sla import MetricSLA, ReadyBy, VolumeVsWeekday
from tracelake.monitors.alerts.watch import BlockedPipelinePolicy, MetricMonitor
from tracelake.monitors.metrics.anomaly import RollingBand, SeasonalBand, StaticThreshold
from tracelake.monitors.runbooks import runbook

__all__ = ["BLOCKED", "MONITORS", "SLAS"]


SLAS = [
    MetricSLA(
        "tip_recall", component="tip_predictions", metric="recall", minimum=0.80, window_days=2, min_coverage=0.5,
        description="recall of tip predictions >= 0.80 over the last 2 labelled days",
        policy=AlertPolicy("tip_recall_sla", severity="error", runbook_url=runbook("tip-recall"),
                           description="Tippers are being missed: check concept drift, retrain, or roll back."),
    ),
    ReadyBy(
        "predictions_ready", component="tip_predictions", hour=6, days_after=1, clock="partition",
        description="each day's predictions exist by 06:00 UTC the next day",
        policy=AlertPolicy("predictions_late", severity="error", runbook_url=runbook("predictions-late"),
                           description="Downstream consumers read yesterday's scores: find the missing input."),
    ),
    VolumeVsWeekday(
        "etl_volume", component="cleaned_trips", tolerance=0.30, weeks=4,
        description="cleaned trips within ±30% of the same weekday in the last 4 weeks",
        policy=AlertPolicy("etl_volume", severity="warn", runbook_url=runbook("etl-volume"),
                           description="Trip volume moved: a feed outage, a duplicate load, or a real event."),
    ),
]

MONITORS = [
    MetricMonitor("cleaned_rows_weekday", "cleaned_trips", "output_rows", rules=(SeasonalBand(seasons=4, k=3.5),)),
    MetricMonitor("positive_rate", "tip_predictions", "positive_rate", rules=(RollingBand(window=14, k=3.5),)),
    MetricMonitor("prediction_bias", "tip_predictions", "prediction_bias", kind="window",
                  rules=(StaticThreshold(-0.15, 0.15), RollingBand(window=14, k=4.0))),
    MetricMonitor("daily_auc", "tip_predictions", "roc_auc", kind="window", rules=(RollingBand(window=14, k=4.0),)),
]

BLOCKED = BlockedPipelinePolicy(
    AlertPolicy("pipeline_blocked", severity="error", runbook_url=runbook("blocked"),
                description="A blocking declared test failed; downstream did not run for that partition."),
    components=("raw_trips", "cleaned_trips", "trip_features", "trip_labels", "training_set", "tip_predictions"),
)
