"""The demo continues or starts clean, never corrupts; the CLI answers and fails with one line."""

from __future__ import annotations

import json

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
        run_demo(home, 1, DemoConfig(trips_per_day=150, faults=["etl_bug@2026-01-07"]), instance=instance,
                 progress=False)
    with pytest.raises(ValueError, match="unknown fault kind"):
        run_demo(home, 1, DemoConfig(faults=["meteor@2026-01-07"]), instance=instance, progress=False)


def test_fresh_only_deletes_what_a_demo_created(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep me")
    with pytest.raises(CliError, match="refusing to delete"):
        wipe_demo(str(precious))
    assert (precious / "data.txt").exists()


def test_cli_lists_and_shows_runs_and_verifies(scenario, capsys):
    home = scenario["home"]
    assert main(["--home", home, "runs", "--component", "tip_model", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["partition_key"] for r in runs] == ["2026-01-19", "2026-01-12"]
    assert main(["--home", home, "run", "show", runs[0]["run_id"]]) == 0
    shown = capsys.readouterr().out
    assert "training_set@v" in shown and "registered tip_model v2" in shown and "val_auc=" in shown
    assert main(["--home", home, "audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("OK:")


@pytest.mark.parametrize("argv, message", [
    (["run", "show", "01M89FZ4TYSEB82KNH1VRH01SK"], "no component run 01M89FZ4TYSEB82KNH1VRH01SK"),
    (["run", "show", "nonsense"], "not a Tracelake run id"),
    (["runs", "--component", "nope"], "no runs of component 'nope'"),
    (["runs", "--since", "yesterday"], "is not a date or time"),
])
def test_cli_bad_input_is_one_clear_line_and_exit_2(scenario, capsys, argv, message):
    assert main(["--home", scenario["home"], *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_cli_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["runs", "--status", "bogus"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
