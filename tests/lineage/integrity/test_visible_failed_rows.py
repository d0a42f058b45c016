"""``audit verify`` names rows of a failed or abandoned run still visible in the newest version of
its output or quarantine table (a rollback that never happened), and is clean once they are
rolled back. delta-rs only: the records are journaled, the commits written as a run's are."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from tracelake.lineage import COMPONENT_RUNS, RUN_ID_COLUMN, open_lakehouse
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.lineage.record.rollback import roll_back
from tracelake.lineage.record.runid import new_run_id

TABLE = "numbers"


def _append(lake, table: str, run_id: str, keys: list[str]) -> int:
    path = lake.layout.table(table)
    rows = pa.table({"key": keys, RUN_ID_COLUMN: [run_id] * len(keys)})
    write_deltalake(path, rows, mode="append", commit_properties=CommitProperties(
        custom_metadata={"userMetadata": json.dumps({"tracelake_run_id": run_id})}))
    return DeltaTable(path).version()


def _record(lake, run_id: str, status: str, **fields) -> None:
    now = datetime.now(UTC)
    lake.journal.append(COMPONENT_RUNS, run_id, {
        "run_id": run_id, "component": TABLE, "asset_key": TABLE, "status": status, "started_at": now,
        "ended_at": now, "output_table": TABLE, "write_mode": "append", **fields})


@pytest.mark.parametrize("status", ["failed", "abandoned"])
@pytest.mark.parametrize("where", ["output", "quarantine"])
def test_rows_of_a_run_that_did_not_succeed_are_named_until_rolled_back(home, status, where):
    lake = open_lakehouse(home)
    good = new_run_id()
    _record(lake, good, "succeeded", output_version=_append(lake, TABLE, good, ["a", "b"]), output_rows=2)
    # The run committed, then failed (or died); its record claims the commit, but its rows are
    # still in the newest version: its rollback never happened.
    bad = new_run_id()
    if where == "output":
        table = TABLE
        version = _append(lake, table, bad, ["x", "y", "z"])
        _record(lake, bad, status, output_version=version, output_rows=3)
    else:
        table = f"{TABLE}__quarantine"
        version = _append(lake, table, bad, ["x", "y", "z"])
        _record(lake, bad, status, quarantine_table=table, quarantine_version=version, quarantined_rows=3)

    report = verify_lakehouse(lake)
    assert not report.ok
    assert report.problems == [f"{table}: 3 rows of {status} run {bad} ({TABLE} ) are still visible; roll them back "
                               "with `tracelake audit reconcile` or re-run that partition"]

    roll_back(lake.layout.table(table), bad, version, "append", None)
    report = verify_lakehouse(lake)
    assert report.ok, report.problems


def test_a_succeeded_runs_rows_and_its_quarantine_are_not_named(home):
    lake = open_lakehouse(home)
    good = new_run_id()
    quarantine = f"{TABLE}__quarantine"
    _record(lake, good, "succeeded", output_version=_append(lake, TABLE, good, ["a"]), output_rows=1,
            quarantine_table=quarantine, quarantine_version=_append(lake, quarantine, good, ["bad"]), quarantined_rows=1)
    # A failed run that committed nothing has nothing to look for.
    _record(lake, new_run_id(), "failed")
    report = verify_lakehouse(lake)
    assert report.ok, report.problems
