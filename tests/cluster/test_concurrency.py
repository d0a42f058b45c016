"""Concurrent writers on the object store: nothing lost, and the same partition has one winner.

Four worker processes - four Spark drivers on the standalone cluster, four journal clients of one
PostgreSQL - each materialise 25 different partitions of one table at once. Every run must be
recorded exactly once, every commit must be in the table, and ``audit verify`` must be clean:
the data table was written by four drivers taking turns (journal.table_lock). The workers flush
nothing (their journal holds every record), so the audit tables are written afterwards by one
``audit flush``.

Racing delta-rs writers on the object store - what the audit flushes of several machines are -
are tested apart: four processes append 25 times each to one table at once, and every commit
must be there (delta-rs relies on SeaweedFS honouring conditional puts, ``If-None-Match: *``).
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from cluster_lab import ROWS_PER_APPEND, Worker, save_timing, start_delta_rs_appenders, wait_until

pytestmark = pytest.mark.cluster


def _partitions(first: str, n: int) -> list[str]:
    start = date.fromisoformat(first)
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


def test_four_writers_of_different_partitions_lose_nothing(cluster, tmp_path: Path):
    from deltalake import DeltaTable

    home = cluster.new_home("concurrency")
    parts = _partitions("2026-02-01", 100)
    t0 = time.monotonic()
    workers = [Worker(cluster, home, parts[i::4], tmp_path / f"w{i}.json") for i in range(4)]
    results = [w.wait() for w in workers]
    elapsed = time.monotonic() - t0

    outcomes = [r for res in results for r in res["runs"]]
    assert len(outcomes) == 100 and all(r["success"] for r in outcomes), [r for r in outcomes if not r["success"]][:2]
    started = {s["run_id"] for w in workers for s in w.started()}
    assert len(started) == 100

    cluster.cli(home, "audit", "flush", "--json")
    runs = cluster.cli(home, "runs", "--component", "numbers", "--limit", "1000", "--json")
    assert {r["run_id"] for r in runs} == started, "every run opened is recorded, once"
    assert {r["status"] for r in runs} == {"succeeded"}
    assert sorted(r["partition_key"] for r in runs) == sorted(parts)

    table = DeltaTable(f"{home}/tables/numbers")
    versions = sorted(r["output_version"] for r in runs)
    assert versions == sorted(set(versions)), "no two runs claim the same version"
    assert table.version() == max(versions)
    data = table.to_pyarrow_table(columns=["_tl_run_id", "_tl_partition"])
    assert data.num_rows == 1000 and set(data.column("_tl_run_id").to_pylist()) == started

    verify = cluster.cli(home, "audit", "verify", "--json")
    assert verify["ok"], verify
    save_timing("concurrency_4x25", elapsed, runs=100, runs_per_second=round(100 / elapsed, 2))


def test_four_delta_rs_writers_of_one_table_lose_no_commit(cluster, tmp_path: Path):
    """4 processes x 25 delta-rs appends to one s3a:// table, released together: 100 commits, all rows."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    writers, appends = 4, 25
    uri = f"{cluster.new_home('delta-rs-race')}/audit/race"
    schema = pa.schema([("writer", pa.int64()), ("seq", pa.int64()), ("i", pa.int64())])
    write_deltalake(uri, schema.empty_table(), mode="error")   # version 0: the race is about appends only
    t0 = time.monotonic()
    procs = start_delta_rs_appenders(uri, writers, appends, tmp_path)
    try:
        codes = [p.wait(1200) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    elapsed = time.monotonic() - t0
    logs = {w: (tmp_path / f"appender{w}.log").read_text()[-2000:] for w in range(writers)}
    assert codes == [0] * writers, {w: logs[w] for w, c in enumerate(codes) if c}

    table = DeltaTable(uri)
    assert table.version() == writers * appends, "one version per append"
    history = [h for h in table.history() if h.get("operation") == "WRITE" and "writer" in h]
    committed = sorted((int(h["writer"]), int(h["seq"])) for h in history)
    expected = sorted((w, s) for w in range(writers) for s in range(appends))
    assert committed == expected, "every append is a commit of its own, none lost or doubled"
    data = table.to_pyarrow_table()
    assert data.num_rows == writers * appends * ROWS_PER_APPEND
    pairs = set(zip(data.column("writer").to_pylist(), data.column("seq").to_pylist(), strict=True))
    assert sorted(pairs) == expected, "every append's rows are in the table"
    retries = sum(int((h.get("operationMetrics") or {}).get("num_retries", 0)) for h in history)
    save_timing("delta_rs_race_4x25", elapsed, commits=writers * appends, commit_retries=retries)


def test_two_writers_of_one_partition_one_wins(cluster, tmp_path: Path):
    """Both held just before their commit until both are there, then released together."""
    home = cluster.new_home("same-partition")
    partition = "2026-03-01"
    markers = [tmp_path / f"marker{i}" for i in range(2)]
    workers = [Worker(cluster, home, [partition], tmp_path / f"w{i}.json", TRACELAKE_FAILPOINTS="before_commit=pause",
                      TRACELAKE_FAILPOINT_MARKER=str(markers[i])) for i in range(2)]
    wait_until(lambda: all(m.exists() for m in markers), 900, "both writers to reach their commit")
    for m in markers:
        m.unlink()
    results = [w.wait() for w in workers]

    outcomes = [r for res in results for r in res["runs"]]
    assert sorted(r["success"] for r in outcomes) == [False, True], outcomes
    loser = next(r for r in outcomes if not r["success"])
    assert "ConcurrentPartitionWriteError" in loser["failures"][0] and "first writer wins" in loser["failures"][0]

    runs = cluster.cli(home, "runs", "--component", "numbers", "--json")
    assert sorted(r["status"] for r in runs) == ["failed", "succeeded"]
    winner = next(r for r in runs if r["status"] == "succeeded")
    rows = cluster.cli(home, "sql", f"SELECT DISTINCT _tl_run_id FROM numbers WHERE _tl_partition = '{partition}'",
                       "--json")
    assert [r["_tl_run_id"] for r in rows] == [winner["run_id"]], "the table holds the winner's rows only"
    assert cluster.cli(home, "audit", "verify", "--json")["ok"]
