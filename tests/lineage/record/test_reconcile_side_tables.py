"""A run killed after its quarantine commit (written just before the output's) or after keeping a
rejected batch: reconciliation must account for those commits too - the quarantined rows rolled
back like the output's, every commit claimed by the abandoned record - or ``audit verify`` reads
them as forged and readers see rows of a run that never succeeded.

In-process and without Spark: the dead run is an open marker journaled by this process (which
reconciliation treats as dead, as a marker left by an earlier life of the same pid would be) and
its commits are delta-rs writes naming it, as ``Materialisation.commit`` and ``reject`` make them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from tracelake.lineage import COMPONENT_RUNS, PARTITION_COLUMN, RUN_ID_COLUMN, open_lakehouse
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.reconcile import reconcile_open_runs
from tracelake.lineage.record.runid import new_run_id

TABLE, QUARANTINE, REJECTED = "numbers", "numbers__quarantine", "numbers__rejected"
DAY = "2026-01-02"


def _write(lake, table: str, run_id: str, keys: list[str], *, replace: bool, **meta) -> int:
    """One commit of ``keys`` into partition DAY, naming the run; ``replace``: it replaces the
    partition (a re-run), else a blind append. Returns its version."""
    rows = pa.table({"key": keys, RUN_ID_COLUMN: [run_id] * len(keys), PARTITION_COLUMN: [DAY] * len(keys)})
    props = CommitProperties(custom_metadata={"userMetadata": json.dumps({"tracelake_run_id": run_id, **meta})})
    path = lake.layout.table(table)
    if replace:
        write_deltalake(path, rows, mode="overwrite", predicate=f"{PARTITION_COLUMN} = '{DAY}'",
                        partition_by=[PARTITION_COLUMN], commit_properties=props)
    else:
        write_deltalake(path, rows, mode="append", partition_by=[PARTITION_COLUMN], commit_properties=props)
    return DeltaTable(path).version()


def _row(run_id: str, status: str) -> dict:
    return {"run_id": run_id, "component": TABLE, "asset_key": TABLE, "partition_key": DAY, "status": status,
            "started_at": datetime.now(UTC), "output_table": TABLE, "write_mode": "partition"}


def _earlier_run(lake) -> str:
    """A run of the partition that succeeded: two rows in the table, one set aside."""
    run_id = new_run_id()
    out = _write(lake, TABLE, run_id, ["a", "b"], replace=False)
    quarantined = _write(lake, QUARANTINE, run_id, ["bad-a"], replace=False, quarantine=True)
    record = {**_row(run_id, "succeeded"), "ended_at": datetime.now(UTC), "output_version": out, "output_rows": 2,
              "quarantine_table": QUARANTINE, "quarantine_version": quarantined, "quarantined_rows": 1}
    lake.journal.append(COMPONENT_RUNS, run_id, record)
    return run_id


def _latest(lake, table: str) -> list[tuple[str, str]]:
    t = DeltaTable(lake.layout.table(table)).to_pyarrow_table(columns=[RUN_ID_COLUMN, "key"])
    return sorted(zip(t.column(RUN_ID_COLUMN).to_pylist(), t.column("key").to_pylist(), strict=True))


def _rollbacks_of(lake, table: str, run_id: str) -> list[int]:
    path = lake.layout.table(table)
    return [v for v in range(delta_meta.latest_version(path) + 1)
            if delta_meta.read_commit(path, v).user_metadata.get("tracelake_rollback_of") == run_id]


@pytest.mark.parametrize("output_landed", [False, True], ids=["killed-before-output", "killed-before-final-record"])
def test_a_dead_runs_quarantine_commit_is_rolled_back_and_claimed(home, output_landed):
    lake = open_lakehouse(home)
    earlier = _earlier_run(lake)
    # A re-run of the partition: its open marker, its quarantine commit (replacing the earlier
    # run's set-aside row), perhaps its output commit - then the process is gone.
    run_id = new_run_id()
    lake.journal.open_run(run_id, _row(run_id, "started"))
    quarantined = _write(lake, QUARANTINE, run_id, ["bad-x", "bad-y"], replace=True, quarantine=True)
    if output_landed:
        _write(lake, TABLE, run_id, ["a2", "b2", "c2"], replace=True)

    (result,) = reconcile_open_runs(lake)
    assert (result.run_id, result.action) == (run_id, "abandoned")

    # The newest quarantine holds none of its rows (the earlier run's row is back), nor does the table.
    assert _latest(lake, QUARANTINE) == [(earlier, "bad-a")]
    assert _latest(lake, TABLE) == [(earlier, "a"), (earlier, "b")]
    # One rollback commit per table it wrote, each recorded.
    (undone,) = _rollbacks_of(lake, QUARANTINE, run_id)
    rec = lake.store.component_runs(include_open=False).set_index("run_id").loc[run_id]
    assert rec["status"] == "abandoned"
    assert rec["quarantine_table"] == QUARANTINE and rec["quarantine_version"] == quarantined
    assert rec["quarantined_rows"] == 2
    assert f"quarantine commit ({QUARANTINE}@v{quarantined}) had landed; its rows were rolled back at version {undone}" \
        in rec["error_message"]
    if output_landed:
        assert _rollbacks_of(lake, TABLE, run_id) == [rec["rolled_back_version"]]
    else:
        assert "no output was committed" in rec["error_message"] and rec["output_version"] is None
    # The record and the tables agree: no forged commit, no leftover rows.
    report = verify_lakehouse(lake)
    assert report.ok, report.problems
    # Done once: a second pass finds nothing open and writes nothing.
    assert reconcile_open_runs(lake) == [] and len(_rollbacks_of(lake, QUARANTINE, run_id)) == 1


def test_a_dead_runs_rejected_batch_stays_kept_and_is_claimed(home):
    lake = open_lakehouse(home)
    _earlier_run(lake)
    # A blocking test refused the batch: it is kept aside, then the process dies before its record.
    run_id = new_run_id()
    lake.journal.open_run(run_id, _row(run_id, "started"))
    kept = _write(lake, REJECTED, run_id, ['{"key": "z"}'], replace=False, rejected=True)

    (result,) = reconcile_open_runs(lake)
    assert result.action == "abandoned" and f"rejected batch was kept in {REJECTED}@v{kept}" in result.detail
    rec = lake.store.component_runs(include_open=False).set_index("run_id").loc[run_id]
    assert rec["rejected_table"] == REJECTED and rec["rejected_version"] == kept and rec["rejected_rows"] == 1
    # Kept for inspection, as a failed run's rejected batch is.
    assert _latest(lake, REJECTED) == [(run_id, '{"key": "z"}')]
    report = verify_lakehouse(lake)
    assert report.ok, report.problems
