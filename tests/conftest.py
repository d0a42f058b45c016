"""Shared fixtures: one Spark session and one MLflow store per test process.

Spark costs ~11 s to start and MLflow ~3 s to create a SQLite store, so both are created once;
every test still gets its own lakehouse folder (``tmp_path``), its own journal and its own
Delta tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Small, deterministic Spark for tests (read by tracelake.lineage.settings when the session starts).
os.environ.setdefault("TRACELAKE_SPARK_MASTER", "local[2]")
os.environ.setdefault("TRACELAKE_SPARK_SHUFFLE_PARTITIONS", "2")
os.environ.setdefault("TRACELAKE_SPARK_DRIVER_MEMORY", "2g")


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tracelake-session")


@pytest.fixture(scope="session", autouse=True)
def _shared_mlflow_store(session_dir):
    """One MLflow SQLite store for the whole session (runs are told apart by their tags)."""
    uri = f"sqlite:///{session_dir / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


@pytest.fixture(scope="session")
def spark(session_dir):
    from tracelake.lineage import get_spark, load_settings

    return get_spark(load_settings(home=str(session_dir / "lakehouse")))


@pytest.fixture
def home(tmp_path) -> str:
    return str(tmp_path / "lakehouse")


@pytest.fixture
def lake(home, spark):
    from tracelake.lineage import open_lakehouse

    return open_lakehouse(home)


# The injected faults of the end-to-end scenario (dates in the simulated January 2026).
SCENARIO_FAULTS = [
    "late_labels@2026-01-08:2",
    "missing_labels@2026-01-09:0.5",
    "late_labels@2026-01-13:2",        # a prediction day whose labels land two days late
    "etl_bug@2026-01-14",
    "missing_labels@2026-01-15:0.5",
    "concept_drift@2026-01-16..2026-01-17",
    "covariate_shift@2026-01-16..",
    "missing_partition@2026-01-18",
    "schema_break@2026-01-21",
]
SCENARIO_DAYS = 17  # 2026-01-05 .. 2026-01-21: two retrains (Jan 12, Jan 19), monitoring every morning


@pytest.fixture(scope="session")
def scenario(session_dir, spark):
    """The reference pipeline over 16 simulated days with injected faults, run once per session
    through the real demo orchestration (Dagster jobs on an ephemeral instance)."""
    import dagster as dg

    from tracelake.jobs.demo import DemoConfig, run_demo
    from tracelake.lineage import open_lakehouse

    home = str(session_dir / "scenario")
    instance = dg.DagsterInstance.ephemeral()
    config = DemoConfig(seed=11, trips_per_day=400, faults=list(SCENARIO_FAULTS))
    result = run_demo(home, SCENARIO_DAYS, config, instance=instance, progress=False)
    return {"home": home, "instance": instance, "result": result, "config": config, "lake": open_lakehouse(home)}
