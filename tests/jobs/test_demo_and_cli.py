"""The demo continues or starts clean, never corrupts; the CLI answers and fails with one line."""

from __future__ import annotations

import dagster as dg
import pytest

from tracelake.jobs.cli import main
from tracelake.jobs.demo import DemoConfig, demo_day_plan, run_demo, wipe_demo
from tracelake.lineage import open_lakehouse
from tracelake.lineage.cli_support import CliError


def test_day_plan_follows_the_cadences():
    from datetime import date

    start = date(2026, 1, 5)
    assert [j for j, _ in demo_day_plan(date(2026, 1, 6), start, False, False)] == ["daily_etl"]
    monday = [j for j, _ in demo_day_plan(date(2026, 1, 12), start, False, False)]
    assert monday == ["daily_etl", "weekly_training", "daily_inference", "daily_drift"]
    assert [j for j, _ in demo_day_plan(date(2026, 1, 14), start, True, True)] == [
        "daily_etl", "daily_inference", "daily_drift", "daily_evaluation"]


def test_a_second_demo_continues_and_a_different_setup_is_refused(tmp_path, spark):
    home = str(tmp_path / "demo")
    instance = dg.DagsterInstance.ephemeral()
    config = DemoConfig(trips_per_day=150, faults=[])
    first = run_demo(home, 1, config, instance=instance, progress=False)
    second = run_demo(home, 1, config, instance=instance, progress=False)
    assert (first["last_day"], second["first_day"]) == ("2026-01-05", "2026-01-06")
    runs = open_lakehouse(home).store.component_runs()
    assert sorted(set(runs["partition_key"])) == ["2026-01-05", "2026-01-06"]
    assert set(runs["status"]) == {"succeeded"}
    with pytest.raises(CliError, match="different setup"):
        run_demo(home, 1, DemoConfig(trips_per_day=300, faults=[]), instance=instance, progress=False)
    with pytest.raises(CliError, match="would change days already simulated"):
        run_demo(home, 1, DemoConfig(trips_per_day=150, faults=["etl_bug@2026-01-06"]), instance=instance,
                 progress=False)
    # A fault on a day not simulated yet is how a demo is continued into trouble.
    assert run_demo(home, 1, DemoConfig(trips_per_day=150, faults=["etl_bug@2026-01-07"]), instance=instance,
                    progress=False)["last_day"] == "2026-01-07"
    with pytest.raises(ValueError, match="unknown fault kind"):
        run_demo(home, 1, DemoConfig(faults=["meteor@2026-01-07"]), instance=instance, progress=False)


def test_fresh_only_deletes_what_a_demo_created(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep me")
    with pytest.raises(CliError, match="refusing to delete"):
        wipe_demo(str(precious))
    assert (precious / "data.txt").exists()


def test_cli_usage_errors_are_one_line(capsys):
    assert main(["runs", "--status", "bogus"]) == 2   # main() returns the exit code, usage errors included
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
