"""The resources of the Tracelake code location, one key per role.

Every field left unset is resolved from the environment at run time (see
``tracelake.lineage.settings``), so the same definitions run on a laptop and on a cluster;
``local_resources(home)`` pins everything under one folder (tests, benchmarks, demos).
"""

from __future__ import annotations

from typing import Any

from tracelake.assets import TripSimulatorResource
from tracelake.lineage import DeltaIOManager, LakehouseResource, MlflowResource, SparkResource
from tracelake.monitors.alerts.channels import AlertChannelsResource

__all__ = ["build_resources", "local_resources"]


def build_resources(*, home: str | None = None, spark: SparkResource | None = None,
                    simulator: TripSimulatorResource | None = None, alert_channels: AlertChannelsResource | None = None,
                    **lakehouse_fields: Any) -> dict[str, Any]:
    spark = spark or SparkResource(home=home)
    mlflow = MlflowResource(home=home)
    lakehouse = LakehouseResource(home=home, spark=spark, mlflow=mlflow, **lakehouse_fields)
    return {
        "spark": spark,
        "mlflow": mlflow,
        "lakehouse": lakehouse,
        "delta_io_manager": DeltaIOManager(lakehouse=lakehouse),
        "simulator": simulator or TripSimulatorResource(),
        "alert_channels": alert_channels or AlertChannelsResource(),
    }


def local_resources(home: str, *, faults: list[str] | None = None, trips_per_day: int | None = None,
                    seed: int | None = None, shuffle_partitions: int = 2,
                    alert_channels: AlertChannelsResource | None = None, **lakehouse_fields: Any) -> dict[str, Any]:
    """Everything under ``home``: the embedded setup used by tests, benchmarks and the demo."""
    return build_resources(
        home=home,
        spark=SparkResource(home=home, shuffle_partitions=shuffle_partitions),
        simulator=TripSimulatorResource(seed=seed, trips_per_day=trips_per_day, faults=faults or []),
        alert_channels=alert_channels,
        **lakehouse_fields,
    )
