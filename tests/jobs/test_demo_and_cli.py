"""The demo continues or starts clean, never corrupts; the CLI answers and fails with one line."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from tracelake.jobs.cli import main
from tracelake.jobs.demo import DemoConfig, demo_day_plan, run_demo, wipe_demo
from tracelake.jobs.summary import print_summary
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


@pytest.fixture(scope="module")
def continued_demo(tmp_path_factory, spark) -> dict:
    """A small demo run one day at a time: two quiet days, then a third continued into an ETL
    bug. The continuation test checks each step; the summary test reads the lakehouse it leaves."""
    home = str(tmp_path_factory.mktemp("demo") / "lakehouse")
    instance = dg.DagsterInstance.ephemeral()
    config = DemoConfig(trips_per_day=150, faults=[])
    steps: dict = {"home": home, "instance": instance, "first": run_demo(home, 1, config, instance=instance,
                                                                             progress=False)}
    steps["second"] = run_demo(home, 1, config, instance=instance, progress=False)
    steps["runs_after_two_days"] = open_lakehouse(home).store.component_runs()
    # A fault on a day not simulated yet is how a demo is continued into trouble.
    steps["third"] = run_demo(home, 1, DemoConfig(trips_per_day=150, faults=["etl_bug@2026-01-07"]),
                              instance=instance, progress=False)
    return steps


def test_a_second_demo_continues_and_a_different_setup_is_refused(continued_demo):
    home, instance = continued_demo["home"], continued_demo["instance"]
    first, second = continued_demo["first"], continued_demo["second"]
    assert (first["last_day"], second["first_day"]) == ("2026-01-05", "2026-01-06")
    runs = continued_demo["runs_after_two_days"]
    assert sorted(set(runs["partition_key"])) == ["2026-01-05", "2026-01-06"]
    assert set(runs["status"]) == {"succeeded"}
    with pytest.raises(CliError, match="different setup"):
        run_demo(home, 1, DemoConfig(trips_per_day=300, faults=[]), instance=instance, progress=False)
    with pytest.raises(CliError, match="would change days already simulated"):
        run_demo(home, 1, DemoConfig(trips_per_day=150, faults=["etl_bug@2026-01-06"]), instance=instance,
                 progress=False)
    assert continued_demo["third"]["last_day"] == "2026-01-07"
    with pytest.raises(ValueError, match="unknown fault kind"):
        run_demo(home, 1, DemoConfig(faults=["meteor@2026-01-07"]), instance=instance, progress=False)


def test_the_summary_counts_what_audit_verify_checks_in_a_fresh_process(continued_demo):
    home = continued_demo["home"]
    out = io.StringIO()
    print_summary(home, continued_demo["third"], Path(home) / "_dagster", out=out)
    text = out.getvalue()
    counted = re.search(r"Audit check: OK - (\d+) chained records, (\d+) outputs matched", text)
    assert counted, text
    verify = subprocess.run([sys.executable, "-m", "tracelake.jobs.cli", "--home", home, "audit", "verify", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stderr
    report = json.loads(verify.stdout)
    assert (int(counted[1]), int(counted[2])) == (report["records"], report["runs"])
    # The injected fault, by date, with what the record holds of it (the red check in the Dagster UI).
    assert re.search(r"Injected faults, by date.*\n  2026-01-07 +etl_bug +fares in cents", text), text
    assert "recorded: cleaned_trips 2026-01-07 test fare_amount_range ERROR" in text
    # One way to open the Dagster UI on this lakehouse, and what plain `dagster dev` would need.
    assert f"tracelake --home {home} ui" in text
    assert "TRACELAKE_PARTITIONS_END=2026-01-08" in text and "TRACELAKE_RUNBOOK_BASE=" in text


def test_the_summary_names_the_evidently_reports_the_drift_runs_recorded():
    from tracelake.jobs.summary import _print_evidently_reports

    root = "/lake/reports/drift"
    whole = pd.DataFrame([{"table_name": t, "drift_date": d, "report_html": f"{root}/{t}/{d}/RUN{d[-1]}.html"}
                          for t in ("trip_features", "tip_predictions") for d in ("2026-01-15", "2026-01-16")])
    out = io.StringIO()
    _print_evidently_reports(pd.concat([whole, whole]), "2026-01-16", out)   # one row per column: one per day
    text = out.getvalue()
    assert "Evidently drift reports (4, one per table and day" in text
    assert f"  {root}/<table>/<day>/<drift run id>.html" in text
    assert f"e.g. trip_features 2026-01-16: {root}/trip_features/2026-01-16/RUN6.html" in text


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
