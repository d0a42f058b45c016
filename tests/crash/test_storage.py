"""Storage that refuses: a full disk at each write (a real tmpfs filled to the last byte), read-only
storage, a Spark session built without Tracelake's options, history files gone."""

from __future__ import annotations

import json

import pytest
from crash_checks import summary
from crash_scenarios import HORIZON, external_session, full_disk, lost_history, read_only_journal

# Real Spark workers on a small shared machine: minutes, not the suite's default 15-minute cap.
pytestmark = [pytest.mark.crash, pytest.mark.timeout(3600)]


def test_a_full_disk_at_each_write_loses_nothing_and_says_why(crash_base, small_disks, tmp_path):
    out = full_disk(crash_base, tmp_path / "lab")
    assert not any(out.found.values()), summary(out.found)
    case = {name: out.record(run_id) for name, run_id in out.facts["by_case"].items()}

    # The data commit on a full disk: failed, nothing committed, the cause first.
    assert case["data_commit"]["status"] == "failed" and case["data_commit"]["output_version"] is None
    assert case["data_commit"]["error_message"].startswith("No space left on device - ")
    # The final record on a full journal: the commit had landed and is rolled back; once there was
    # room, the record kept in memory was written - failed, naming the cause and the rollback.
    rec = case["journal_final"]
    assert rec["status"] == "failed" and rec["output_version"] is not None and rec["rolled_back_version"] is not None
    assert rec["error_message"].startswith("the run's final record could not be written: No space left on device")
    # The audit flush and the anchor on a full disk: the run itself succeeded; the log says why the
    # flush and the anchor failed, root cause first; the records were flushed once there was room.
    assert case["audit_flush"]["status"] == case["anchor_write"]["status"] == "succeeded"
    assert out.facts["audit_flush_log"] and out.facts["anchor_write_log"]
    assert out.facts["flush"]["returncode"] == 0
    # Read-only tables: failed with the cause first.
    assert case["read_only_tables"]["status"] == "failed"
    assert case["read_only_tables"]["error_message"].startswith("Read-only file system - ")
    # A final record refused, then the process killed before there was room: the open marker made
    # it abandoned, with the version that landed and the rollback the run had done itself.
    rec = case["journal_full_then_killed"]
    assert rec["status"] == "abandoned" and rec["output_version"] is not None and rec["rolled_back_version"] is not None
    # No false tamper alarm from any of it (a torn anchor line would read as a forged one).
    assert out.verify["ok"], out.verify["problems"]


def test_a_read_only_journal_runs_nothing_and_says_so(crash_base, small_disks, tmp_path):
    out = read_only_journal(crash_base, tmp_path / "lab")
    assert not any(out.found.values()), summary(out.found)
    (run,) = out.facts["result"]["runs"]
    assert not run["success"] and out.facts["started"] == []
    assert out.facts["tables_after"] == out.facts["tables_before"]
    assert out.verify["ok"], out.verify["problems"]


def test_a_spark_session_built_elsewhere_still_creates_tables_with_the_retention_horizon(crash_base, tmp_path):
    out = external_session(crash_base, tmp_path / "lab")
    assert not any(out.found.values()), summary(out.found)
    assert out.facts["result"]["external_session_retention"] is None   # the session had no such default
    assert out.facts["result"]["runs"][0]["success"]
    fresh = out.observation["tables"]["fresh_table"]
    assert fresh["retention"] == {"log": HORIZON, "file": HORIZON}
    retention = out.facts["retention_verify"]
    assert retention["returncode"] == 0, retention
    assert all(r["ok"] for r in json.loads(retention["stdout"]))


def test_retention_verify_reports_lost_history_instead_of_crashing(crash_base, tmp_path):
    result = lost_history(crash_base, tmp_path / "lab")
    # An old data file gone: reported on that table, the others still checked.
    gone = result["file"]
    assert gone.returncode == 1, gone
    rows = {r["table"]: r for r in gone.json()}
    assert not rows["numbers"]["ok"] and "No such file" in rows["numbers"]["problems"]
    assert rows["doubled"]["ok"]
    # The first commit of the log gone too: still an answer, not a traceback ...
    assert result["commit"].returncode in (0, 1) and "Traceback" not in result["commit"].stderr, result["commit"]
    # ... and `audit verify` names the recorded version that is no longer in the log.
    assert any("numbers@v0 is not in the table's log" in p for p in result["verify"]["problems"])
