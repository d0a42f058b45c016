"""The post-hoc queries on the ETL-bug scenario: fares in cents on 2026-01-14, predictions of that
day scored by model v1 (trained 2026-01-12), and the retrain of 2026-01-19 that learned from the
bad day and carries it into every later prediction."""

from __future__ import annotations

import json
import re

import pytest
from deltalake import DeltaTable

from tracelake.jobs.cli import main
from tracelake.lineage import open_lakehouse
from tracelake.lineage.query import slices
from tracelake.lineage.query.flags import active_flags, flag, unflag, upstream_checks
from tracelake.lineage.query.history import component_history, diff_runs
from tracelake.lineage.query.impact import impact
from tracelake.lineage.query.render import trace_dot, trace_mermaid, trace_tree
from tracelake.lineage.query.review import review
from tracelake.lineage.query.slices import SliceError
from tracelake.lineage.query.trace import LineageWalker, trace
from tracelake.monitors.review import review_with_monitors

BUG_DAY, RETRAIN_DAY = "2026-01-14", "2026-01-19"


def _model_version(rec) -> str:
    (model,) = [m for m in rec["models"] if m["role"] == "registered"]
    return str(model["version"])


def test_predictions_of_the_bug_day_trace_back_to_the_bad_etl_run(etl_bug_scenario, record_of):
    lake = etl_bug_scenario.lake
    bad_etl = record_of(lake, "cleaned_trips", BUG_DAY)["run_id"]
    result = trace(lake, "tip_predictions", f"pickup_date = '{BUG_DAY}' AND pickup_zone = 'Airport'")
    assert result.rows > 0
    (root,) = result.roots
    assert result.nodes[root].component == "tip_predictions" and result.nodes[root].partition_key == BUG_DAY
    assert bad_etl in result.nodes
    # Row-level narrowing: only the Airport trips of that day, at every keyed hop down to the source.
    for component in ("trip_features", "cleaned_trips", "raw_trips"):
        assert result.nodes[record_of(lake, component, BUG_DAY)["run_id"]].rows == result.rows
    # ... and across cadences through the model to the weekly training set and its daily inputs.
    first_model = record_of(lake, "tip_model", "2026-01-12")
    assert [n.label for n in result.nodes.values() if n.kind == "model"] == [f"model tip_model v{_model_version(first_model)}"]
    assert first_model["run_id"] in result.nodes
    features_days = sorted(n.partition_key for n in result.runs("trip_features"))
    assert features_days[0] == "2026-01-05" and BUG_DAY in features_days
    assert {n.partition_key for n in result.runs("trip_labels")} >= {"2026-01-07", "2026-01-11"}


def test_a_later_model_carries_the_bad_etl_run_into_its_predictions(etl_bug_scenario, record_of):
    lake = etl_bug_scenario.lake
    bad_etl = record_of(lake, "cleaned_trips", BUG_DAY)["run_id"]
    retrained = _model_version(record_of(lake, "tip_model", RETRAIN_DAY))
    result = trace(lake, "tip_predictions", f"pickup_date = '{RETRAIN_DAY}'")
    assert [n.label for n in result.nodes.values() if n.kind == "model"] == [f"model tip_model v{retrained}"]
    assert bad_etl in result.nodes  # via the retrained model <- training set of the 19th <- features of the 14th


def test_impact_of_the_bad_etl_run_is_exactly_the_affected_predictions(etl_bug_scenario, record_of):
    lake = etl_bug_scenario.lake
    bad_etl = record_of(lake, "cleaned_trips", BUG_DAY)["run_id"]
    retrained = _model_version(record_of(lake, "tip_model", RETRAIN_DAY))
    result = impact(lake, bad_etl)
    preds = DeltaTable(lake.layout.table("tip_predictions")).to_pandas()
    expected = preds[(preds["pickup_date"].astype(str) == BUG_DAY) | (preds["model_version"] == retrained)]
    affected = result.affected_runs("tip_predictions")
    assert sum(n.rows for n in affected) == len(expected)
    assert {n.id for n in affected} == set(expected["_tl_run_id"])
    # Nothing else: the days around the bug, predicted by the first model, are untouched.
    for day in ("2026-01-13", "2026-01-15", "2026-01-16", "2026-01-17"):
        assert record_of(lake, "tip_predictions", day)["run_id"] not in result.nodes
    assert result.models() == [f"model tip_model v{retrained}"]
    summary = {s["component"]: s for s in result.summary()}
    assert summary["trip_features"]["runs"] == 1 and summary["training_set"]["runs"] == 1
    # Same answer when asked by table version.
    version = int(record_of(lake, "cleaned_trips", BUG_DAY)["output_version"])
    assert impact(lake, f"cleaned_trips@{version}").start == bad_etl


def test_trace_as_of_a_time_before_the_retrain_reports_the_old_model(etl_bug_scenario, record_of):
    lake = etl_bug_scenario.lake
    retrain = record_of(lake, "tip_model", RETRAIN_DAY)
    first, second = _model_version(record_of(lake, "tip_model", "2026-01-12")), _model_version(retrain)
    old = trace(lake, "tip_predictions", "pickup_date >= '2026-01-12'", as_of=retrain["started_at"].isoformat())
    new = trace(lake, "tip_predictions", "pickup_date >= '2026-01-12'")
    assert [n.label for n in old.nodes.values() if n.kind == "model"] == [f"model tip_model v{first}"]
    assert sorted(n.label for n in new.nodes.values() if n.kind == "model") == sorted(
        [f"model tip_model v{first}", f"model tip_model v{second}"])
    assert old.version < new.version


def test_renderings_and_json(etl_bug_scenario):
    result = trace(etl_bug_scenario.lake, "tip_predictions", f"pickup_date = '{RETRAIN_DAY}'")
    tree = trace_tree(result)
    assert tree.splitlines()[0].startswith("tip_predictions@v") and "more trip_features runs" in tree
    assert "more trip_features runs" not in trace_tree(result, max_siblings=None)
    mermaid = trace_mermaid(result)
    assert mermaid.startswith("flowchart LR") and mermaid.count("-->") == len(result.edges)
    assert trace_dot(result).startswith("digraph lineage")
    payload = json.loads(json.dumps(result.to_dict(), default=str))
    assert payload["rows"] == result.rows and len(payload["nodes"]) == len(result.nodes)


def test_history_marks_changes_and_diff_says_what_differs(etl_bug_scenario, record_of):
    lake = etl_bug_scenario.lake
    history = component_history(lake, "cleaned_trips")
    assert [h["partition_key"] for h in history][:2] == ["2026-01-05", "2026-01-06"]
    # Same code and config all along; what changes is the declared tests' outcome: the fare check
    # fails on the bug day and passes again the day after.
    assert all(set(h["changed"]) <= {"tests"} for h in history)
    assert [h["partition_key"] for h in history if h["changed"]] == [BUG_DAY, "2026-01-15"]
    assert {h["status"] for h in history} == {"succeeded"}
    a, b = record_of(lake, "tip_model", "2026-01-12"), record_of(lake, "tip_model", RETRAIN_DAY)
    d = diff_runs(lake, a["run_id"], b["run_id"])
    assert d["code"] == {} and d["config"] == {}
    assert d["inputs"]["training_set"]["a"] != d["inputs"]["training_set"]["b"]
    assert "val_auc" in d["metrics"] and d["metrics"]["val_auc"]["delta"] is not None
    assert d["schema"] == {"added": [], "removed": [], "changed": {}}


def test_bad_questions_get_clear_errors(etl_bug_scenario):
    lake = etl_bug_scenario.lake
    with pytest.raises(SliceError, match="cannot evaluate --where"):
        trace(lake, "tip_predictions", "no_such_column = 1")
    with pytest.raises(SliceError, match="no table 'nope'"):
        trace(lake, "nope", "true")
    with pytest.raises(SliceError, match="neither a version number nor an ISO time"):
        trace(lake, "tip_predictions", "true", as_of="last tuesday")
    with pytest.raises(SliceError, match="did not exist at 1990-01-01"):
        trace(lake, "tip_predictions", "true", as_of="1990-01-01")
    with pytest.raises(SliceError, match="has no version 9999"):
        trace(lake, "tip_predictions", "true", as_of="9999")
    with pytest.raises(SliceError, match="no recorded run wrote"):
        impact(lake, "cleaned_trips@999")


def test_cli_trace_impact_history_diff(etl_bug_scenario, record_of, capsys):
    home, lake = etl_bug_scenario.home, etl_bug_scenario.lake
    assert main(["--home", home, "trace", "tip_predictions", "--where", f"pickup_date = '{BUG_DAY}'", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert any(n["component"] == "cleaned_trips" and n["partition_key"] == BUG_DAY for n in payload["nodes"])
    assert main(["--home", home, "trace", "tip_predictions", "--where", f"pickup_date = '{BUG_DAY}'",
                 "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR")
    bad_etl = record_of(lake, "cleaned_trips", BUG_DAY)["run_id"]
    assert main(["--home", home, "impact", bad_etl]) == 0
    out = capsys.readouterr().out
    retrained = _model_version(record_of(lake, "tip_model", RETRAIN_DAY))
    assert "tip_predictions" in out and f"model versions affected: model tip_model v{retrained}" in out
    assert main(["--home", home, "history", "tip_model", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    a, b = (record_of(lake, "tip_model", d)["run_id"] for d in ("2026-01-12", RETRAIN_DAY))
    assert main(["--home", home, "diff", a, b]) == 0
    assert "training_set: v0" in capsys.readouterr().out
    assert main(["--home", home, "trace", "tip_predictions", "--where", "bogus_col > 1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot evaluate --where" in err


def test_a_warm_walker_answers_repeated_questions_without_opening_a_table_again(etl_bug_scenario, monkeypatch):
    lake = etl_bug_scenario.lake
    walker = LineageWalker(lake)
    first = trace(lake, "tip_predictions", f"pickup_date = '{BUG_DAY}'", walker=walker)
    opened: list[str] = []
    real = slices.DeltaTable

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            opened.append(str(args[0] if args else kwargs.get("table_uri")))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(slices, "DeltaTable", Counting)
    again = trace(lake, "tip_predictions", f"pickup_date = '{BUG_DAY}'", walker=walker)
    assert set(first.nodes) == set(again.nodes) and first.rows == again.rows
    # Nothing is opened again: the root's newest version comes from the log listing (a moved
    # table is seen - tests/lineage/query/test_slices.py) and every snapshot is memory.
    assert opened == []
    # A cold walker gets the same answer, still without replaying upstream tables' logs: each hop
    # reads the files its run recorded (only the root's snapshot is opened, once).
    cold = trace(lake, "tip_predictions", f"pickup_date = '{BUG_DAY}'")
    assert set(cold.nodes) == set(first.nodes) and cold.rows == first.rows
    assert opened == [lake.layout.table("tip_predictions")]


def test_review_of_flagged_predictions_ranks_the_bad_etl_run_first(etl_bug_scenario, record_of, tmp_path, capsys):
    lake = open_lakehouse(etl_bug_scenario.copy(tmp_path / "flagged"))  # flags are writes: a private copy
    bad_etl = record_of(lake, "cleaned_trips", BUG_DAY)["run_id"]
    f1 = flag(lake, "tip_predictions", f"pickup_date = '{BUG_DAY}' AND pickup_zone IN ('Airport', 'Midtown')",
              "tip probabilities look wrong for long trips", by="oncall")
    flag(lake, "tip_predictions", f"pickup_date = '{BUG_DAY}' AND payment_type = 'cash'", "cash tips predicted",
         by="oncall")
    assert f1["rows"] > 0 and len(active_flags(lake)) == 2
    ranking = review_with_monitors(lake)
    top = ranking[0]
    assert top.run_id == bad_etl, [(e.component, e.partition_key, e.score, e.why) for e in ranking[:5]]
    assert top.in_flagged == 2 and top.in_unflagged == 0
    assert top.origin and "fare_amount_range" in top.why and "where it starts" in top.why
    # The whole bug day is behind every flagged row and no unflagged one: specificity ties them, and
    # the evidence separates them - the features computed from the bad fares drifted, but their input
    # already carried the fault, so they are not where it started; the raw feed holds no evidence.
    day = {e.component: e for e in ranking if e.partition_key == BUG_DAY}
    assert {e.score for e in day.values()} == {1.0}
    features, raw = day["trip_features"], day["raw_trips"]
    assert any(ev.kind == "drift" for ev in features.evidence) and not features.origin, features.why
    assert not raw.evidence and "no evidence" in raw.why and raw.rank > top.rank
    # Said readably: a fail rate as the share of rows, the domain classifier as a multivariate score.
    assert re.search(r"fare_amount_range failed \(\d+% of rows failed, at most 1% allowed\)", top.why), top.why
    assert "multivariate (domain-classifier AUC" in features.why, features.why
    assert not any("(all columns)" in e.why for e in ranking)
    # Runs the evidence cannot separate say so first (the CLI's table cuts long lines).
    tied = [e for e in ranking if e.tied_with]
    assert tied and all(e.why.startswith("tied with") and "the record cannot separate them" in e.why for e in tied)
    # Without the monitors' evidence the record still ranks the failed test first.
    assert review(lake)[0].run_id == bad_etl
    shared = next(e for e in ranking if e.component == "tip_model")
    assert shared.score <= 0  # the model is behind every prediction, flagged or not: not the first place to look
    assert main(["--home", str(lake.settings.home), "review", "--top", str(len(ranking))]) == 0
    shown = capsys.readouterr().out
    assert f"Look first at #1: cleaned_trips {BUG_DAY}" in shown and "the record cannot separate them" in shown
    failed = upstream_checks(lake, "tip_predictions", f"pickup_date = '{BUG_DAY}'")
    assert any(c["check"] == "fare_amount_range" and c["run_id"] == bad_etl for c in failed)
    unflag(lake, f1["flag_id"], "false alarm for Midtown")
    assert len(active_flags(lake)) == 1
