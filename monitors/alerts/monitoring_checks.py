"""SLAs in the Dagster UI: each SLA is an asset check on its component's asset, evaluated by the
monitoring job, so its status sits next to the declared tests on the asset's Checks tab."""


from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from tracelake.lineage import LakehouseResource
from tracelake.lineage.record.redact import scrub_text
from tracelake.monitors.alerts.channels import AlertChannelsResource
from tracelake.monitors.alerts.manager import AlertManager
from tracelake.monitors.alerts.watch import BlockedPipelinePolicy, MetricMonitor, watch

__all__ = ["MonitoringConfig", "build_monitoring_checks"]


class MonitoringConfig(dg.Config):
    as_of: str | None = None  # ISO time the evaluation is "at" (default: now); the demo passes simulated time


def build_monitoring_checks(slas: Sequence[Any], monitors: Sequence[MetricMonitor] = (),
                            blocked: BlockedPipelinePolicy | None = None,
                            name: str = "evaluate_monitoring") -> dg.AssetChecksDefinition:
    specs = [dg.AssetCheckSpec(f"sla_{s.name}", asset=dg.AssetKey(s.component),
                               description=s.description or f"SLA {s.name}") for s in slas]

    @dg.multi_asset_check(specs=specs, name=name, can_subset=False,
                          description="Evaluate SLAs, anomaly monitors and blocked pipelines; open or resolve alerts.")
    def monitoring(context: dg.AssetCheckExecutionContext, config: MonitoringConfig, lakehouse: LakehouseResource,
                   alert_channels: AlertChannelsResource):
        lake = lakehouse.open()
        as_of = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)
        # Channel configuration is checked once, here: an error is logged and recorded, and the
        # pass goes on - alerts still reach audit.alerts and this UI; the misconfigured channel's
        # pages wait in the outbox (failed, with the reason) until its configuration is fixed.
        channels = alert_channels.configure()
        manager = AlertManager(lake, channels.channels, attempts=alert_channels.attempts)
        for channel, reason in channels.errors.items():
            context.log.error(f"alert channel {channel} is misconfigured: {scrub_text(reason)}")
        manager.record_configuration(channels.errors)
        report = watch(lake, slas=slas, monitors=monitors, blocked=blocked, manager=manager, as_of=as_of)
        for policy, component, action in report.alert_actions:
            if action in ("opened", "resolved", "repeated"):
                context.log.warning(f"alert {policy} on {component}: {action}")
        for monitor, anomaly in report.anomalies[-20:]:
            context.log.info(f"anomaly {monitor.name} at {anomaly.time:%Y-%m-%d}: {anomaly.describe()}")
        for sla, result in zip(slas, report.slas, strict=True):
            metadata: dict[str, Any] = {"message": dg.MetadataValue.text(result.message),
                                        "evaluable": dg.MetadataValue.bool(result.evaluable)}
            if result.observed is not None:
                metadata["observed"] = dg.MetadataValue.float(float(result.observed))
            if result.threshold is not None:
                metadata["threshold"] = dg.MetadataValue.float(float(result.threshold))
            if sla.policy is not None and sla.policy.runbook:
                metadata["runbook"] = dg.MetadataValue.url(sla.policy.runbook)
            yield dg.AssetCheckResult(
                asset_key=dg.AssetKey(sla.component), check_name=f"sla_{sla.name}", passed=not result.breached,
                severity=dg.AssetCheckSeverity.ERROR if sla.policy and sla.policy.severity == "error"
                else dg.AssetCheckSeverity.WARN, metadata=metadata, description=result.message)

    return monitoring
