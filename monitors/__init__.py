"""Monitors: declared tests, ML metrics with late labels, SLAs, anomaly detection on metric
history, and alerts. Reusable: no particular pipeline is known here."""

from .alerts import AlertManager, AlertPolicy
from .anomaly import RollingBand, SeasonalBand, StaticThreshold, detect
from .channels import AlertChannelsResource, SmtpChannel, WebhookChannel
from .evaluation import LabelledPredictions, evaluate_window
from .sla import MetricSLA, ReadyBy, VolumeVsWeekday
from .tests import (
    ActionLimit, AllowedValues, Expression, InputFreshness, NotNull, NullRate, Pattern, Range, RowCountVsHistory,
    Schema, Unique,
)
from .watch import BlockedPipelinePolicy, MetricMonitor, watch

__all__ = [
    "AlertManager", "AlertPolicy", "RollingBand", "SeasonalBand", "StaticThreshold", "detect",
    "AlertChannelsResource", "SmtpChannel", "WebhookChannel", "LabelledPredictions", "evaluate_window",
    "MetricSLA", "ReadyBy", "VolumeVsWeekday", "ActionLimit", "AllowedValues", "Expression", "InputFreshness",
    "NotNull", "NullRate", "Pattern", "Range", "RowCountVsHistory", "Schema", "Unique", "BlockedPipelinePolicy",
    "MetricMonitor", "watch",
]
