"""Resource key ``mlflow``: where component runs are tracked (the Dagster side of ``mlflow_link``).

Kept apart from ``mlflow_link`` because it needs Dagster, and the processes that only read the
audit (``tracelake trace``, ``impact`` ...) should not pay Dagster's import (~1 s of CPU).
``mlflow_link.MlflowResource`` still resolves here.
"""

from __future__ import annotations

from typing import ClassVar

import dagster as dg
from pydantic import Field

from tracelake.lineage.record.mlflow_link import MlflowLink, link_for
from tracelake.lineage.settings import Settings, load_settings

__all__ = ["MlflowResource"]


class MlflowResource(dg.ConfigurableResource):
    """Resource key ``mlflow``: where component runs are tracked.

    Default: a SQLite store inside the lakehouse (``$TRACELAKE_HOME/mlflow/mlflow.db``) with
    artifacts next to it; set ``MLFLOW_TRACKING_URI`` (or ``tracking_uri``) for a server.
    """

    # Recorded with each run (lineage/record/config_record.py); a tracking URI is scanned for credentials.
    tracelake_recorded_fields: ClassVar[tuple[str, ...]] = ("tracking_uri", "ui_url", "home", "experiment_prefix")

    tracking_uri: str | None = Field(default=None, description="default MLFLOW_TRACKING_URI or SQLite in the lakehouse")
    ui_url: str | None = Field(default=None, description="base URL for links; default TRACELAKE_MLFLOW_UI_URL")
    home: str | None = Field(default=None, description="lakehouse root used for the default store")
    experiment_prefix: str = Field(default="tracelake", description="experiments are named <prefix>/<component>")

    def settings(self, default_home: str | None = None) -> Settings:
        return load_settings(home=self.home or default_home, mlflow_tracking_uri=self.tracking_uri,
                             mlflow_ui_url=self.ui_url)

    def link(self, default_home: str | None = None) -> MlflowLink:
        """The shared link; ``default_home`` (the lakehouse's root) places the default SQLite store."""
        settings = self.settings(default_home)
        return link_for(settings, self.experiment_prefix)
