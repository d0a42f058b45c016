"""The journal and the Delta audit tables: durability, idempotent flushes, tamper evidence,
concurrent writers. No Spark needed: delta-rs reads and writes these tables."""

from __future__ import annotations

import multiprocessing as mp
import os
from datetime import UTC, datetime

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from tracelake.lineage import COMPONENT_RUNS, open_lakehouse
from tracelake.lineage.integrity.chain_check import verify_chain
from tracelake.lineage.record.runid import new_run_id


def _run_row(component="comp", status="succeeded", **extra):
    return {"run_id": new_run_id(), "component": component, "status": status,
            "started_at": datetime.now(UTC), **extra}


def test_records_flush_to_delta_with_retention_and_read_back(home):
    lake = open_lakehouse(home)
    rows = [_run_row(metrics={"auc": 0.5 + i / 10}) for i in range(3)]
    for r in rows:
        lake.journal.append(COMPONENT_RUNS, r["run_id"], r)
    # Unflushed records are already visible to readers.
    assert set(lake.store.component_runs()["run_id"]) == {r["run_id"] for r in rows}
    assert lake.store.flush() == {"component_runs": 3}
    dt = DeltaTable(lake.store.path(COMPONENT_RUNS))
    assert dt.metadata().configuration["delta.logRetentionDuration"] == "interval 2555 days"
    assert dt.metadata().configuration["delta.deletedFileRetentionDuration"] == "interval 2555 days"
    back = lake.store.component_runs()
    assert len(back) == 3 and lake.journal.pending_stats()[0] == 0
    assert back.set_index("run_id").loc[rows[2]["run_id"], "metrics"] == {"auc": 0.7}
    assert verify_chain(lake.store, "component_runs").ok


def test_flush_after_a_crash_between_commit_and_bookkeeping_writes_nothing_twice(home):
    lake = open_lakehouse(home)
    for _ in range(4):
        r = _run_row()
        lake.journal.append(COMPONENT_RUNS, r["run_id"], r)
    entries = lake.journal.pending(COMPONENT_RUNS)
    path = lake.store.path(COMPONENT_RUNS)
    # The commit lands, then the process "dies" before the journal forgets the records.
    lake.store._append(COMPONENT_RUNS, path, [e.row for e in entries], lake.store._app_id(COMPONENT_RUNS),
                       entries[-1].chain_seq)
    assert lake.journal.pending_stats()[0] == 4
    lake.store.flush()
    assert DeltaTable(path).to_pyarrow_table().num_rows == 4
    assert lake.journal.pending_stats()[0] == 0


def test_a_narrowed_read_gets_the_same_records_flushed_or_journaled_and_each_once(home):
    """What a history test reads: one component's rows, a few columns. The same records as the
    whole read, whether flushed, still journaled, or both (a flush killed before the trim)."""
    lake = open_lakehouse(home)

    def append(n, component):
        for i in range(n):
            r = _run_row(component=component, output_rows=100 + i, partition_key=f"2026-01-{i + 1:02d}")
            lake.journal.append(COMPONENT_RUNS, r["run_id"], r)

    append(3, "a")
    append(2, "b")
    lake.store.flush()
    append(2, "a")                                    # journaled only
    entries = lake.journal.pending(COMPONENT_RUNS)
    lake.store._append(COMPONENT_RUNS, lake.store.path(COMPONENT_RUNS), [entries[0].row],
                       lake.store._app_id(COMPONENT_RUNS), entries[0].chain_seq)   # flushed and still journaled
    whole = lake.store.read_arrow(COMPONENT_RUNS).to_pandas()
    narrow = lake.store.read_arrow(COMPONENT_RUNS, columns=["run_id", "output_rows"], where={"component": "a"})
    assert narrow.column_names == ["run_id", "output_rows", "journal_id", "chain_seq"]
    expected = whole[whole["component"] == "a"][["run_id", "output_rows"]]
    got = sorted(narrow.to_pandas()[["run_id", "output_rows"]].itertuples(index=False, name=None))
    assert got == sorted(expected.itertuples(index=False, name=None))
    assert narrow.num_rows == 5
    assert lake.store.read_arrow(COMPONENT_RUNS, columns=["run_id"], where={"component": "nobody"}).num_rows == 0


def test_tampering_with_a_record_or_deleting_one_is_detected(home):
    lake = open_lakehouse(home)
    for i in range(5):
        r = _run_row(status="failed" if i == 2 else "succeeded")
        lake.journal.append(COMPONENT_RUNS, r["run_id"], r)
    lake.store.flush()
    path = lake.store.path(COMPONENT_RUNS)
    table = DeltaTable(path).to_pyarrow_table()
    rows = table.to_pylist()
    rows.sort(key=lambda r: r["chain_seq"])
    rows[2]["status"] = "succeeded"  # someone hides a failure
    write_deltalake(path, pa.Table.from_pylist(rows, schema=COMPONENT_RUNS.schema), mode="overwrite")
    report = verify_chain(lake.store, "component_runs")
    assert not report.ok and any("modified" in p for p in report.problems)

    del rows[3]  # ... or removes a record altogether
    rows[2]["status"] = "failed"
    write_deltalake(path, pa.Table.from_pylist(rows, schema=COMPONENT_RUNS.schema), mode="overwrite")
    report = verify_chain(lake.store, "component_runs")
    assert not report.ok and any("missing positions 3..3" in p for p in report.problems)


def test_open_runs_read_as_started_until_finished(home):
    lake = open_lakehouse(home)
    row = _run_row(status="started")
    lake.journal.open_run(row["run_id"], row)
    runs = lake.store.component_runs()
    assert runs.set_index("run_id").loc[row["run_id"], "status"] == "started"
    lake.journal.append(COMPONENT_RUNS, row["run_id"], {**row, "status": "succeeded"}, close_run=row["run_id"])
    runs = lake.store.component_runs()
    assert list(runs["status"]) == ["succeeded"] and not lake.journal.open_runs()


def _write_then_die(home: str) -> None:
    lake = open_lakehouse(home)
    row = _run_row(component="crashy")
    lake.journal.append(COMPONENT_RUNS, row["run_id"], row)
    os._exit(9)  # no flush, no atexit, no cleanup


def test_a_record_reported_written_survives_the_process_dying(home):
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_write_then_die, args=(home,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 9
    lake = open_lakehouse(home)
    assert list(lake.store.component_runs()["component"]) == ["crashy"]


def _writer(home: str, n: int) -> None:
    lake = open_lakehouse(home)
    for i in range(n):
        row = _run_row(component=f"w{os.getpid()}")
        lake.journal.append(COMPONENT_RUNS, row["run_id"], row)
        if i % 7 == 0:
            lake.store.flush()
    lake.store.flush()


def test_concurrent_writers_and_flushers_lose_nothing(home):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(home, 25)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    lake = open_lakehouse(home)
    lake.store.flush()
    delta_rows = DeltaTable(lake.store.path(COMPONENT_RUNS)).to_pyarrow_table()
    assert delta_rows.num_rows == 75
    assert len(set(delta_rows.column("run_id").to_pylist())) == 75
    assert verify_chain(lake.store, "component_runs").ok
