"""The one Tracelake code location: what `dagster dev` (workspace.yaml) loads."""

from __future__ import annotations

import dagster as dg

from tracelake.assets import PIPELINE_ASSETS
from tracelake.assets.compliance import COMPLIANCE_ASSETS

from .compliance import COMPLIANCE_JOBS, new_model_version_sensor, period_report_schedule
from .maintenance import (
    audit_maintenance_job,
    audit_maintenance_schedule,
    retention_verification_job,
    retention_verification_schedule,
)
from .monitoring import monitoring_checks, monitoring_job, monitoring_schedule
from .pipeline import PIPELINE_JOBS, PIPELINE_SCHEDULES
from .resources import build_resources

# The code location's name in workspace.yaml; runs launched in-process (the demo) carry it so the
# Dagster UI files them under this location's jobs, as runs launched from the UI or a schedule are.
CODE_LOCATION = "tracelake"
CODE_LOCATION_TAGS = {".dagster/repository": f"__repository__@{CODE_LOCATION}"}

defs = dg.Definitions(
    assets=[*PIPELINE_ASSETS, *COMPLIANCE_ASSETS],
    asset_checks=[monitoring_checks],
    jobs=[*PIPELINE_JOBS, monitoring_job, audit_maintenance_job, retention_verification_job, *COMPLIANCE_JOBS],
    schedules=[*PIPELINE_SCHEDULES, monitoring_schedule, audit_maintenance_schedule, retention_verification_schedule,
               period_report_schedule],
    sensors=[new_model_version_sensor],
    resources=build_resources(),
)
