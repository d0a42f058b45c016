"""Races: reconcilers started at the same instant over the same dead runs, and several processes
writing the same new partition of one table at the same instant."""

from __future__ import annotations

import pytest
from crash_checks import summary
from crash_scenarios import concurrent_writers, inject_duplicate, racing_reconcilers

# Real Spark workers on a small shared machine: minutes, not the suite's default 15-minute cap.
pytestmark = [pytest.mark.crash, pytest.mark.timeout(3600)]


def test_racing_reconcilers_record_each_dead_run_exactly_once(crash_base, tmp_path):
    out = racing_reconcilers(crash_base, tmp_path / "lab", runs=20, landed=5, reconcilers=4)
    assert not any(out.found.values()), summary(out.found)
    assert out.facts["exit_codes"] == [0, 0, 0, 0]
    ids = out.facts["ids"]
    # Each dead run: exactly one reconciler claimed it; any other that saw it was refused.
    for run_id in ids:
        actions = out.facts["actions"][run_id]
        assert actions.count("abandoned") == 1 and set(actions) <= {"abandoned", "already-finished"}, actions
    recs = [out.record(run_id) for run_id in ids]
    assert [r["status"] for r in recs] == ["abandoned"] * 20
    # The five whose commit had landed: rolled back once, by one commit the record names.
    numbers = out.observation["tables"]["numbers"]
    for rec in recs[:5]:
        rollbacks = [v for v, c in numbers["commits"].items() if c["rollback_of"] == rec["run_id"]]
        assert rollbacks == [str(rec["rolled_back_version"])], (rec, rollbacks)
    assert out.verify["ok"], out.verify["problems"]

    # A duplicate written by hand (a second, validly chained record of a finished run) is named.
    tampered = inject_duplicate(out.lab, ids[0])
    assert not tampered["ok"]
    assert f"component_runs: run_id {ids[0]} is recorded 2 times" in tampered["problems"], tampered["problems"]


def test_concurrent_writers_of_one_new_partition_leave_exactly_the_winner(crash_base, tmp_path):
    out = concurrent_writers(crash_base, tmp_path / "lab", writers=6, partition="2026-01-20")
    assert not any(out.found.values()), summary(out.found)
    assert len(out.facts["started"]) == 6
    (winner,) = out.facts["winners"]
    assert len(out.facts["losers"]) == 5
    numbers = out.observation["tables"]["numbers"]
    for run_id, (status, error_type, rolled_back) in out.facts["losers"].items():
        assert status == "failed" and error_type.endswith("ConcurrentPartitionWriteError"), (run_id, status, error_type)
        assert numbers["commits"][str(rolled_back)]["rollback_of"] == run_id
    rows = {r["run_id"]: r["rows"] for r in numbers["latest_rows"] if r["partition"] == "2026-01-20"}
    assert rows == {winner: 10}
    # Dagster says the same: one run succeeded, five failed.
    statuses = sorted(out.observation["dagster"][out.record(rid)["dagster_run_id"]]["status"]
                      for rid in out.facts["started"])
    assert statuses == ["FAILURE"] * 5 + ["SUCCESS"]
    assert out.verify["ok"], out.verify["problems"]
