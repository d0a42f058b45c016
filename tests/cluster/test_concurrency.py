"""Concurrent writers on the object store: nothing lost, and the same partition has one winner.

Four worker processes - four Spark drivers on the standalone cluster, four journal clients of one
PostgreSQL - each materialise 25 different partitions of one table at once. Every run must be
recorded exactly once, every commit must be in the table, and ``audit verify`` must be clean:
the audit tables were written by four delta-rs writers (conditional puts on SeaweedFS), the data
table by four drivers taking turns (journal.table_lock).
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from cluster_lab import Worker, save_timing, wait_until

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
