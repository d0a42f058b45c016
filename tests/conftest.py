"""Shared fixtures and the test pyramid's markers.

- ``unit``: no Spark (the core's pure logic, the audit store on delta-rs) - seconds in all;
- ``integration``: a real Spark session with Delta, Dagster and MLflow on a toy pipeline;
- ``scenario``: the reference pipeline over simulated days with one injected fault each; the
  crash suite (``crash``: real kills) and the scale-out suite (``cluster``: real servers) count as
  scenarios too, being as slow.

Markers are given from the fixtures a test uses, so ``pytest -m unit`` and
``pytest -m "not scenario"`` are the fast loops, and ``pytest`` runs everything.

Spark costs ~11 s to start and MLflow ~3 s to create a SQLite store, so both are created once per
process; every test still gets its own lakehouse folder (``tmp_path``), journal and tables. The
fault scenarios start from one quiet base history (eight days and the first model), simulated
once and copied - a lakehouse can be moved or copied and still answers every query.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Small, deterministic Spark for tests (read by tracelake.lineage.settings when the session starts).
os.environ.setdefault("TRACELAKE_SPARK_MASTER", "local[2]")
os.environ.setdefault("TRACELAKE_SPARK_SHUFFLE_PARTITIONS", "2")
os.environ.setdefault("TRACELAKE_SPARK_DRIVER_MEMORY", "2g")

_SPARK_FIXTURES = {"spark", "lake"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("crash") or item.get_closest_marker("cluster"):
            # Real process kills and real servers take minutes each: out of the fast loop too.
            item.add_marker(pytest.mark.scenario)
        elif any(n.endswith("_scenario") or n == "base_history" for n in names):
            item.add_marker(pytest.mark.scenario)
        elif names & _SPARK_FIXTURES or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tracelake-session")


@pytest.fixture(scope="session", autouse=True)
def _anchors_in_the_session(session_dir):
    """Signed chain heads go to the session's folder, never to the developer's ~/.tracelake."""
    previous = os.environ.get("TRACELAKE_ANCHOR_DIR")
    os.environ["TRACELAKE_ANCHOR_DIR"] = str(session_dir / "anchors")
    yield
    if previous is None:
        os.environ.pop("TRACELAKE_ANCHOR_DIR", None)
    else:
        os.environ["TRACELAKE_ANCHOR_DIR"] = previous


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


# --- the reference pipeline, one fault at a time -------------------------------------------------

SEED, TRIPS_PER_DAY = 11, 400
BASE_DAYS = 8            # 2026-01-05 .. 2026-01-12: a week of ETL, then the first model on Monday the 12th
FIRST_FAULT_DAY = "2026-01-13"


@dataclass
class Scenario:
    """A simulated lakehouse and the Dagster instance its runs were launched on."""

    name: str
    home: str
    instance: Any
    faults: list[str]
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def lake(self):
        from tracelake.lineage import open_lakehouse

        return open_lakehouse(self.home)

    def copy(self, target: Path) -> str:
        """A private copy for a test that writes (flags, vacuum, tampering...)."""
        shutil.copytree(self.home, target)
        return str(target)


def _instance(directory: Path):
    import dagster as dg

    directory.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.local_temp(str(directory))


@pytest.fixture(scope="session")
def base_history(session_dir, spark) -> Scenario:
    """Eight quiet days and the first model: where every fault scenario starts."""
    from tracelake.jobs.demo import DemoConfig, run_demo

    home, dagster_dir = session_dir / "base", session_dir / "base-dagster"
    instance = _instance(dagster_dir)
    result = run_demo(str(home), BASE_DAYS, DemoConfig(seed=SEED, trips_per_day=TRIPS_PER_DAY, faults=[]),
                      instance=instance, progress=False)
    instance.dispose()
    return Scenario("base", str(home), None, [], result)


def _run_scenario(session_dir: Path, base: Scenario, name: str, days: int, faults: list[str],
                  skip_jobs: frozenset[str] = frozenset()) -> Scenario:
    from tracelake.jobs.demo import DemoConfig, run_demo

    home, dagster_dir = session_dir / name, session_dir / f"{name}-dagster"
    shutil.copytree(base.home, home)
    shutil.copytree(session_dir / "base-dagster", dagster_dir)
    instance = _instance(dagster_dir)
    result = run_demo(str(home), days, DemoConfig(seed=SEED, trips_per_day=TRIPS_PER_DAY, faults=faults),
                      instance=instance, progress=False, skip_jobs=skip_jobs)
    return Scenario(name, str(home), instance, faults, result)


_NO_DRIFT = frozenset({"daily_drift"})


@pytest.fixture(scope="session")
def etl_bug_scenario(session_dir, base_history) -> Scenario:
    """Fares in cents on 2026-01-14, then a week on to the retrain of the 19th (which learns from it)."""
    return _run_scenario(session_dir, base_history, "etl_bug", 7, ["etl_bug@2026-01-14"])


@pytest.fixture(scope="session")
def covariate_shift_scenario(session_dir, base_history) -> Scenario:
    """A new pickup zone (Lakeside) from 2026-01-14."""
    return _run_scenario(session_dir, base_history, "covariate_shift", 3, ["covariate_shift@2026-01-14.."])


@pytest.fixture(scope="session")
def concept_drift_scenario(session_dir, base_history) -> Scenario:
    """Tipping behaviour changes on 2026-01-13..14 (recall falls), then returns."""
    return _run_scenario(session_dir, base_history, "concept_drift", 6, ["concept_drift@2026-01-13..2026-01-14"],
                         _NO_DRIFT)


@pytest.fixture(scope="session")
def schema_break_scenario(session_dir, base_history) -> Scenario:
    """The vendor renames fare_amount to fare_usd (as text) on 2026-01-14."""
    return _run_scenario(session_dir, base_history, "schema_break", 2, ["schema_break@2026-01-14"], _NO_DRIFT)


@pytest.fixture(scope="session")
def missing_feed_scenario(session_dir, base_history) -> Scenario:
    """The raw trips of 2026-01-13 never arrive."""
    return _run_scenario(session_dir, base_history, "missing_feed", 2, ["missing_partition@2026-01-13"], _NO_DRIFT)


@pytest.fixture(scope="session")
def label_faults_scenario(session_dir, base_history) -> Scenario:
    """The labels of 2026-01-13's trips arrive two days late (and half of 2026-01-14's never do)."""
    return _run_scenario(session_dir, base_history, "label_faults", 5,
                         ["late_labels@2026-01-13:2", "missing_labels@2026-01-14:0.5"], _NO_DRIFT)


@pytest.fixture(scope="session")
def record_of():
    """``record_of(lake, component, partition)``: the one recorded run of that component and partition."""

    def find(lake, component: str, partition: str):
        runs = lake.store.component_runs()
        hit = runs[(runs["component"] == component) & (runs["partition_key"] == partition)]
        assert len(hit) == 1, (component, partition, len(hit))
        return hit.iloc[0]

    return find
