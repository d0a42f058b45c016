"""Output that reads right: counts in the singular, one time format that says its zone, both
clocks of an alert labelled, the multivariate drift score as what it is, a history that shows what
changed and a diff that points at the ETL bug."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from tracelake.jobs.cli import main
from tracelake.lineage.cli_support import fmt_time, format_table, plural, short

BEFORE, BUG_DAY = "2026-01-13", "2026-01-14"
MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d+")
OFFSET = re.compile(r"\d{2}:\d{2}(:\d{2})?[+-]\d{2}:\d{2}")


# --- words and times (no lakehouse) ---------------------------------------------------------------

def test_counts_agree_with_their_nouns():
    assert [plural(n, "row") for n in (0, 1, 2)] == ["0 rows", "1 row", "2 rows"]
    assert plural(1, "run") == "1 run" and plural(3, "entry") == "3 entries"


def test_times_read_the_same_everywhere():
    assert fmt_time("2026-01-14T06:00:03.123456+01:00") == "2026-01-14 05:00:03 UTC"
    assert fmt_time(datetime(2026, 1, 14, 6, 0, 3, 999, tzinfo=UTC)) == "2026-01-14 06:00:03 UTC"
    assert fmt_time("2026-01-14") == "2026-01-14" and fmt_time(None) == "-"
    assert short("2026-01-14T06:00:03.5Z") == "2026-01-14 06:00:03 UTC"
    table = format_table([{"at": "2026-01-14T06:00:03.123456+00:00", "n": 1}], ["at", "n"])
    assert table.splitlines()[0].split() == ["at", "(UTC)", "n"]
    assert "2026-01-14 06:00:03" in table and not MICROSECONDS.search(table) and "+00:00" not in table


def test_a_trace_of_one_row_says_one_row():
    from tracelake.lineage.query.render import trace_tree
    from tracelake.lineage.query.trace import TraceEdge, TraceNode, TraceResult

    nodes = {"R1": TraceNode("R1", "run", "tip_predictions 2026-01-14", "tip_predictions", BUG_DAY, "succeeded",
                             "tip_predictions", 3, rows=1),
             "R0": TraceNode("R0", "run", "trip_features 2026-01-14", "trip_features", BUG_DAY, "succeeded",
                             "trip_features", 2, rows=1, depth=1)}
    result = TraceResult("tip_predictions", 3, "trip_id = 7", 1, nodes, [TraceEdge("R1", "R0", "rows",
                                                                                    "trip_features@v2", 1)], ["R1"])
    text = trace_tree(result)
    assert "1 row" in text and "1 rows" not in text and "(1 row by key)" in text


# --- alerts: two clocks, both labelled ------------------------------------------------------------

def test_alerts_say_which_clock_each_time_is(tmp_path, capsys, monkeypatch):
    from tracelake.lineage import open_lakehouse
    from tracelake.monitors.alerts.manager import AlertManager, AlertPolicy

    home = str(tmp_path / "lakehouse")
    monkeypatch.setenv("TRACELAKE_HOME", home)
    monkeypatch.setenv("TRACELAKE_ANCHOR_DIR", str(tmp_path / "anchors"))
    manager = AlertManager(open_lakehouse(home))
    policy = AlertPolicy("freshness_sla", channels=())
    as_of = datetime(2026, 1, 15, 7, 0, tzinfo=UTC)          # the simulated morning after
    manager.observe(policy, "cleaned_trips", True, "cleaned_trips is 30 h old", when=as_of)
    manager.observe(policy, "cleaned_trips", True, "cleaned_trips is 54 h old", when=as_of.replace(day=16))
    before = datetime.now(UTC)
    assert main(["alerts", "--home", home]) == 0
    out = capsys.readouterr().out
    assert "as of 2026-01-15 07:00:00 UTC .. 2026-01-16 07:00:00 UTC" in out
    recorded = re.search(r"recorded (\S+ \S+) UTC \(wall clock\)", out)
    assert recorded, out
    assert recorded.group(1)[:10] == before.strftime("%Y-%m-%d")                      # today, not 2026-01-16
    assert "(2 occurrences)" in out and '"as of" is the evaluation\'s as-of time' in out
    assert not MICROSECONDS.search(out) and not OFFSET.search(out)
    assert main(["alerts", "--json", "--home", home]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["last_seen_as_of"].startswith("2026-01-16T07:00") and row["recorded_at"][:10] == recorded.group(1)[:10]


# --- drift: the multivariate score is not a column ------------------------------------------------

def test_the_multivariate_drift_score_is_its_own_line():
    from tracelake.monitors.drift.cli import render_drift
    from tracelake.monitors.drift.profiles import ALL
    from tracelake.monitors.drift.statistics import DriftResult

    fare = DriftResult("fare_amount", "numeric", ALL, ALL, 4000, 400, method="psi", score=0.05, threshold=0.2,
                       drifted=False)
    multi = DriftResult("(all columns)", "multivariate", ALL, ALL, 800, 400, method="domain_classifier_auc",
                        score=0.712, threshold=0.6, drifted=True)
    drift = SimpleNamespace(results=[fare, multi], notes=[], report=None,
                            reference=SimpleNamespace(description="training_set@v3", as_dict=dict))
    window = SimpleNamespace(label=BUG_DAY, days=(BUG_DAY,))
    payload, human = render_drift("trip_features", window, drift, None)
    text = "\n".join(human)
    assert "(all columns)" not in format_table(payload["results"], ["column"])
    assert [r["column"] for r in payload["results"]] == ["fare_amount"]
    assert "multivariate (all columns): domain-classifier AUC 0.71 (threshold 0.6) DRIFT" in text
    assert payload["multivariate"][0]["score"] == pytest.approx(0.712)
    assert all(len(line) <= 120 for line in text.splitlines())


# --- history and diff on the ETL bug ---------------------------------------------------------------

def _run_of(lake, component: str, partition: str) -> str:
    runs = lake.store.component_runs()
    hit = runs[(runs["component"] == component) & (runs["partition_key"] == partition)
               & (runs["status"] == "succeeded")]
    return hit.sort_values("run_id").iloc[-1]["run_id"]


def test_history_shows_what_changed_and_the_tests_not_empty_columns(etl_bug_scenario, capsys):
    assert main(["history", "cleaned_trips", "--home", etl_bug_scenario.home]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert "changed" not in header and "metrics" not in header      # no column that would be empty on every row
    assert "tests" in header
    bug_row = next(line for line in out.splitlines() if line.startswith("01") and f" {BUG_DAY} " in line)
    assert "FAIL fare_amount_range" in bug_row
    assert "the same in all" in out or "changed since the previous run:" in out
    assert "declared tests that failed or warned:" in out
    assert re.search(rf"{BUG_DAY}  FAIL fare_amount_range: (\d+) of \1 rows fail; observed range \[", out)
    assert not MICROSECONDS.search(out) and not OFFSET.search(out)
    assert all(len(line) <= 120 for line in out.splitlines())
    assert main(["history", "cleaned_trips", "--json", "--home", etl_bug_scenario.home]) == 0
    rows = {r["partition_key"]: r for r in json.loads(capsys.readouterr().out)}
    assert [t["check"] for t in rows[BUG_DAY]["tests"]["failed"]] == ["fare_amount_range"]
    assert rows[BUG_DAY]["changed"] == ["tests"]                     # the outcome flipped since the 13th


def test_diff_of_the_day_before_and_the_bug_day_points_at_the_bug(etl_bug_scenario, capsys):
    lake = etl_bug_scenario.lake
    a, b = _run_of(lake, "cleaned_trips", BEFORE), _run_of(lake, "cleaned_trips", BUG_DAY)
    assert main(["diff", a, b, "--home", etl_bug_scenario.home]) == 0
    out = capsys.readouterr().out
    assert "same: code, config, libraries, schema" in out
    line = next(line for line in out.splitlines() if "fare_amount_range:" in line and "PASS" in line)
    changed = r" \*fare_amount_range: PASS \(0 of \d+ rows fail\) -> FAIL \((\d+) of \1 rows fail\)"
    assert re.fullmatch(changed, line), line
    # the data's difference: rows, and the range the test observed in each run (fares in cents)
    assert re.search(r"output: cleaned_trips@v\d+ \(\d+ rows\) -> cleaned_trips@v\d+ \(\d+ rows\)", out)
    stat = re.search(r"fare_amount_range observed range: \[([\d.]+) \.\. ([\d.]+)\] -> \[([\d.]+) \.\. ([\d.]+)\]", out)
    assert stat and float(stat.group(2)) <= 400 < float(stat.group(4)), out
    assert "declared tests (1 outcome changed):" in out and "other tests passed in both runs" in out
    assert all(len(line) <= 120 for line in out.splitlines())
    assert main(["diff", a, b, "--json", "--home", etl_bug_scenario.home]) == 0
    d = json.loads(capsys.readouterr().out)
    fare = next(t for t in d["tests"] if t["check"] == "fare_amount_range")
    assert (fare["a"]["result"], fare["b"]["result"], fare["changed"]) == ("PASS", "FAIL", True)
    assert d["data"]["rows"]["a"] > 0 and d["data"]["rows"]["b"] > 0
    assert d["data"]["observed"]["fare_amount_range"]["b"].startswith("observed range [")


def test_runs_and_run_show_print_readable_times(etl_bug_scenario, capsys):
    lake = etl_bug_scenario.lake
    assert main(["runs", "--limit", "5", "--home", etl_bug_scenario.home]) == 0
    runs = capsys.readouterr().out
    assert runs.splitlines()[0].split()[:5] == ["run_id", "component", "partition", "status", "started"]
    assert main(["run", "show", _run_of(lake, "cleaned_trips", BUG_DAY), "--home", etl_bug_scenario.home]) == 0
    show = capsys.readouterr().out
    assert re.search(r"started \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC  ended \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC",
                     show)
    assert "check   FAIL fare_amount_range" in show
    for text in (runs, show):
        assert not MICROSECONDS.search(text) and not OFFSET.search(text)
