"""Resource key ``simulator``: the synthetic world the reference pipeline's sources read."""

from __future__ import annotations

import os
from typing import ClassVar

import dagster as dg
from pydantic import Field

from .faults import FaultPlan
from .simulation import World

__all__ = ["TripSimulatorResource"]


class TripSimulatorResource(dg.ConfigurableResource):
    """Seed, volume and injected faults of the simulated rideshare feed.

    Unset fields come from ``TRACELAKE_SIM_SEED`` (7), ``TRACELAKE_SIM_TRIPS_PER_DAY`` (2000),
    ``TRACELAKE_SIM_LABEL_LAG_DAYS`` (2) and ``TRACELAKE_SIM_FAULTS`` (none; see ``faults.py``).
    """

    # Recorded with each run (lineage/record/config_record.py).
    tracelake_recorded_fields: ClassVar[tuple[str, ...]] = ("seed", "trips_per_day", "label_lag_days", "faults")

    seed: int | None = Field(default=None, description="random seed of the world")
    trips_per_day: int | None = Field(default=None, description="average trips per day")
    label_lag_days: int | None = Field(default=None, description="days until a trip's tip label arrives")
    faults: list[str] | None = Field(default=None, description="faults to inject, e.g. ['etl_bug@2026-01-20']")

    def world(self) -> World:
        env = os.environ
        faults = self.faults if self.faults is not None else env.get("TRACELAKE_SIM_FAULTS", "")
        return World(
            seed=self.seed if self.seed is not None else int(env.get("TRACELAKE_SIM_SEED", "7")),
            trips_per_day=self.trips_per_day or int(env.get("TRACELAKE_SIM_TRIPS_PER_DAY", "2000")),
            label_lag_days=self.label_lag_days or int(env.get("TRACELAKE_SIM_LABEL_LAG_DAYS", "2")),
            faults=FaultPlan.parse(faults),
        )
