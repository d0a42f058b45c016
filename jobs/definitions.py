"""The one Tracelake code location: what `dagster dev` (workspace.yaml) loads."""

from __future__ import annotations

import dagster as dg

from tracelake.assets import PIPELINE_ASSETS

from .maintenance import (
    audit_maintenance_job, audit_maintenance_schedule, retention_verification_job, retention_verification_schedule,
)
from .monitoring import monitoring_checks, monitoring_job, monitoring_schedule
from .pipeline import PIPELINE_JOBS, PIPELINE_SCHEDULES
from .resources import build_resources

defs = dg.Definitions(
    assets=PIPELINE_ASSETS,
    asset_checks=[monitoring_checks],
    jobs=[*PIPELINE_JOBS, monitoring_job, audit_maintenance_job, retention_verification_job],
    schedules=[*PIPELINE_SCHEDULES, monitoring_schedule, audit_maintenance_schedule, retention_verification_schedule],
    resources=build_resources(),
)
