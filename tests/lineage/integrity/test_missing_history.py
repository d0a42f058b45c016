"""A missing old version is a finding, never a crash: after the oldest version's data file of a
table is deleted (what a careless VACUUM does), ``retention verify`` records the problem and
exits 1, and ``trace --as-of`` that version answers one line and exits 2 - each in a fresh
``tracelake`` process, as a user or the scheduled job runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from tracelake.lineage import DeltaIOManager, LakehouseResource, MlflowResource, SparkResource, component, open_lakehouse
from tracelake.lineage.lakehouse import forget_lakehouse
from tracelake.lineage.record.audit_tables import RETENTION_CHECKS

days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-05")
TRACELAKE = str(Path(sys.executable).with_name("tracelake"))


@component(partitions_def=days, owner="team:tests")
def readings(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Five readings per day."""
    return pd.DataFrame({"key": [f"{context.partition_key}-{i}" for i in range(5)], "value": list(range(5))})


def _resources(home: str) -> dict:
    spark, mlflow = SparkResource(home=home), MlflowResource(home=home)
    lakehouse = LakehouseResource(home=home, spark=spark, mlflow=mlflow)
    return {"spark": spark, "mlflow": mlflow, "lakehouse": lakehouse,
            "delta_io_manager": DeltaIOManager(lakehouse=lakehouse)}


@pytest.fixture(scope="module")
def oldest_file_gone(tmp_path_factory, spark) -> str:
    """Two recorded versions of ``readings`` - the same day written twice, so version 1 replaces
    version 0's files - and then version 0's files deleted, as a VACUUM past the horizon would.
    Built once: the two tests only read it (``retention verify`` adds records the trace ignores)."""
    home = str(tmp_path_factory.mktemp("missing-history") / "lakehouse")
    for _ in range(2):
        assert dg.materialize([readings], partition_key="2026-01-01", resources=_resources(home)).success
    lake = open_lakehouse(home)
    lake.flush()
    table = Path(lake.layout.table("readings"))
    first = json.loads("[" + ",".join((table / "_delta_log" / f"{0:020d}.json").read_text().splitlines()) + "]")
    files = [a["add"]["path"] for a in first if "add" in a]
    assert files
    for name in files:
        (table / name).unlink()
    forget_lakehouse(home)   # the test process holds nothing of what it changed
    return home


def _tracelake(home: str, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRACELAKE_HOME"}
    return subprocess.run([TRACELAKE, "--home", home, *argv], capture_output=True, text=True, env=env,
                          timeout=300, cwd=home)


def _one_clean_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_retention_verify_records_a_missing_old_version_and_exits_1(oldest_file_gone):
    home = oldest_file_gone
    done = _tracelake(home, "retention", "verify", "--json")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not done.stderr.strip(), done.stderr
    answer = {r["table"]: r for r in json.loads(done.stdout)}
    assert not answer["readings"]["ok"] and answer["readings"]["oldest"] == 0
    assert all(r["ok"] for name, r in answer.items() if name != "readings"), answer

    checks = open_lakehouse(home).store.read(RETENTION_CHECKS.name)   # journaled by the other process
    mine = checks[checks["table_name"] == "readings"]
    assert len(mine) == 1, checks
    row = mine.iloc[0]
    assert not row["ok"] and row["oldest_version"] == 0 and row["latest_version"] == 1
    problems = " ".join(row["problems"])
    assert "v0" in problems and ("cannot be read" in problems or "unreadable" in problems), problems
    assert "FileNotFoundError" in problems or "No such file" in problems, problems
    assert checks[checks["table_name"] != "readings"]["ok"].all()


def test_trace_as_of_a_missing_old_version_says_so_in_one_line(oldest_file_gone):
    home = oldest_file_gone
    done = _tracelake(home, "trace", "readings", "--as-of", "0")
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    line = _one_clean_line(done.stderr)
    assert "readings@v0 can no longer be read" in line and "missing" in line, line
    assert "tracelake retention verify" in line, line   # and what to do about it
    # The newest version is still answered: one missing file does not take the table down.
    assert _tracelake(home, "trace", "readings", "--as-of", "1").returncode == 0
