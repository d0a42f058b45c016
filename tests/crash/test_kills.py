"""Kills: a materialisation killed (its whole process group: Python, the Spark JVM, Spark's Python
workers) at each step boundary, and the audit flush killed between its Delta commit and the
journal trim. Afterwards, reconciliation in a fresh process; then the record, every version of
the tables, Dagster and MLflow must agree with each other and with what happened."""

from __future__ import annotations

import pytest
from crash_checks import summary
from crash_scenarios import KILL_POINTS, flush_kill, kill_matrix

# Real Spark workers on a small shared machine: minutes, not the suite's default 15-minute cap.
pytestmark = [pytest.mark.crash, pytest.mark.timeout(3600)]


def test_a_kill_at_each_point_of_a_materialisation_leaves_exactly_what_happened(crash_base, tmp_path):
    out = kill_matrix(crash_base, tmp_path / "lab")
    assert not any(out.found.values()), summary(out.found)
    assert sum(out.kills.values()) == len(KILL_POINTS)
    run = out.facts["by_point"]
    dagster = out.observation["dagster"]
    mlflow = out.observation["mlflow"]
    doubled = out.observation["tables"]["doubled"]

    # Killed before its final record, nothing committed: abandoned, no output, its Dagster run failed
    # by reconciliation (not left STARTED), its MLflow run (when it had been created) KILLED.
    for key in ("after_open-2026-01-02", "after_inputs-2026-01-03", "after_function-2026-01-04",
                "before_commit-2026-01-05"):
        rec = out.record(run[key])
        assert rec["status"] == "abandoned" and rec["output_version"] is None, (key, rec)
        assert "no output was committed" in rec["error_message"]
        assert dagster[rec["dagster_run_id"]]["status"] == "FAILURE"
        assert "Tracelake reconciliation" in dagster[rec["dagster_run_id"]]["failure"]
        assert mlflow.get(rec["run_id"], ["KILLED"]) == ["KILLED"]

    # Killed between its commit and its final record: abandoned with the version that landed, and
    # that commit rolled back by reconciliation - the rollback commit's version is in the record.
    for key in ("after_commit-2026-01-06", "after_commit-2026-01-01"):
        rec = out.record(run[key])
        assert rec["status"] == "abandoned" and rec["output_version"] is not None, (key, rec)
        rollback = doubled["commits"][str(rec["rolled_back_version"])]
        assert rollback["rollback_of"] == rec["run_id"], rollback
        assert not any(r["run_id"] == rec["run_id"] for r in doubled["latest_rows"])
    # ... and the re-run's rollback gave the partition back the rows it had replaced.
    owners = {r["run_id"]: r["rows"] for r in doubled["latest_rows"] if r["partition"] == "2026-01-01"}
    assert list(owners.values()) == [10] and run["after_commit-2026-01-01"] not in owners
    assert out.record(next(iter(owners)))["status"] == "succeeded"   # the base's run, whose rows they are

    # Killed after its final record (before the Dagster events; inside the audit flush at the end of
    # the Dagster run): succeeded, rows visible - and Dagster does not keep the dead run STARTED.
    for key in ("after_final-2026-01-07", "flush_after_commit-2026-01-08"):
        rec = out.record(run[key])
        assert rec["status"] == "succeeded", (key, rec)
        visible = {r["run_id"] for r in doubled["latest_rows"] if r["partition"] == rec["partition_key"]}
        assert visible == {rec["run_id"]}
        assert dagster[rec["dagster_run_id"]]["status"] == "FAILURE"
        assert mlflow[rec["run_id"]] == ["FINISHED"]

    # audit verify, in a fresh process, is clean - before and after the interrupted flush is redone.
    assert out.verify["ok"], out.verify["problems"]
    assert out.facts["verify_after_flush"]["ok"], out.facts["verify_after_flush"]["problems"]
    assert out.facts["observation_after_flush"]["pending_journal_records"] == 0


def test_a_kill_inside_the_audit_flush_is_neither_a_gap_nor_a_duplicate(crash_base, tmp_path):
    out = flush_kill(crash_base, tmp_path / "lab")
    assert not any(out.found.values()), summary(out.found)
    assert out.kills == {"flush_after_commit": 1}
    facts = out.facts
    # Killed after the Delta commit, before the trim: every record is both in Delta and in the
    # journal - read once, verified clean (no "missing positions", no duplicate).
    assert facts["pending_after_kill"] == facts["pending_before"] > 0
    assert facts["duplicates_after_kill"] == {"component_runs": 0}
    assert facts["records_after_kill"] == facts["records_final"] == facts["pending_before"]
    # The next flush writes nothing twice (the commit's transaction id says it was done) and trims.
    assert facts["second_flush"] == {"component_runs": 0}
    assert facts["pending_final"] == 0
