"""Monitors: declared tests, ML metrics with late labels, SLAs, anomaly detection on metric
history, alerts, and drift. Reusable: no particular pipeline is known here.

Names are imported lazily: Spark's Python workers import ``tracelake.monitors.drift.profiles`` for
every profiling task, and should not pay for Dagster and the lineage package to do so.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "alerts.manager": ["AlertManager", "AlertPolicy"],
    "metrics.anomaly": ["RollingBand", "SeasonalBand", "StaticThreshold", "detect"],
    "alerts.channels": ["AlertChannelsResource", "SmtpChannel", "WebhookChannel"],
    "metrics.evaluation": ["LabelledPredictions", "evaluate_window"],
    "alerts.sla": ["MetricSLA", "ReadyBy", "VolumeVsWeekday"],
    "checks": ["ActionLimit", "AllowedValues", "Expression", "Finite", "InputFreshness", "NotNull", "NullRate", "Pattern",
               "Range", "RowCount", "RowCountVsHistory", "Schema", "Unique"],
    "alerts.watch": ["BlockedPipelinePolicy", "MetricMonitor", "watch"],
    "drift.profiles": ["ProfileSpec", "profile_spark", "merge"],
    "drift.statistics": ["DriftThresholds", "DriftResult", "compare_profiles"],
    "drift.job": ["DriftTarget"],
    "drift.query": ["drift_of_window", "explain_drift", "parse_window"],
    "drift.references": ["Reference", "resolve_reference"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tracelake.monitors' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
