"""The faulted reference pipeline as OpenLineage events: its recorded history exported with
``tracelake openlineage export`` into a real HTTP backend on 127.0.0.1, checked field by field
against the audit records (the scenarios are built before this test runs, so their events are
replayed from the record - the same builder the live publisher uses, the same run ids)."""

from __future__ import annotations

from tracelake.jobs.cli import main


def _export(scenario, backend, point_to, capsys) -> None:
    point_to(backend.url)
    assert main(["--home", scenario.home, "openlineage", "export"]) == 0
    assert f"exported {len(backend.events)} events" in capsys.readouterr().out


def test_the_schema_break_is_a_fail_with_the_failed_gate(schema_break_scenario, backend, point_to, capsys,
                                                         records_match, record_of):
    _export(schema_break_scenario, backend, point_to, capsys)
    lake = schema_break_scenario.lake
    by_run = records_match(lake, backend.events)
    broken = record_of(lake, "raw_trips", "2026-01-14")
    assert broken["status"] == "failed"
    events = by_run[broken["run_id"]]
    assert set(events) == {"START", "FAIL"}
    fail = events["FAIL"]
    assert "BlockingCheckFailed" in fail["run"]["facets"]["errorMessage"]["message"]
    assert fail["run"]["facets"]["nominalTime"]["nominalStartTime"].startswith("2026-01-14T00:00:00")
    (out,) = [o for o in fail["outputs"] if o["name"].endswith("/tables/raw_trips")]
    assert "version" not in out["facets"]                              # the gate kept the batch out
    gates = [a for a in out["facets"]["dataQualityAssertions"]["assertions"] if not a["success"]]
    assert gates and all(a["params"]["blocking"] for a in gates)
    (kept,) = [o for o in fail["outputs"] if o["name"].endswith("/tables/raw_trips__rejected")]
    assert kept["facets"]["version"]["datasetVersion"] == str(int(broken["rejected_version"]))
    # The day before went through: COMPLETE, with the raw table version it wrote.
    fine = record_of(lake, "raw_trips", "2026-01-13")
    assert by_run[fine["run_id"]]["COMPLETE"]["outputs"][0]["facets"]["version"]["datasetVersion"] == \
        str(int(fine["output_version"]))


def test_the_etl_bug_history_with_models_and_failed_checks(etl_bug_scenario, backend, point_to, capsys,
                                                           records_match, record_of):
    _export(etl_bug_scenario, backend, point_to, capsys)
    lake = etl_bug_scenario.lake
    by_run = records_match(lake, backend.events)
    bad_day = record_of(lake, "cleaned_trips", "2026-01-14")
    complete = by_run[bad_day["run_id"]]["COMPLETE"]
    (out,) = [o for o in complete["outputs"] if o["name"].endswith("/tables/cleaned_trips")]
    fare = {a["name"]: a for a in out["facets"]["dataQualityAssertions"]["assertions"]}["fare_amount_range"]
    assert fare["success"] is False                                    # fares in cents
    (raw_in,) = complete["inputs"]
    assert raw_in["facets"]["version"]["datasetVersion"] == str(int(bad_day["inputs"][0]["version"]))
    # Models are datasets with their registry version: registered by training, loaded by inference.
    runs = lake.store.component_runs()
    trainings = runs[(runs["component"] == "tip_model") & (runs["status"] == "succeeded")]
    registered = {m["version"] for ms in trainings["models"] for m in ms if m["role"] == "registered"}
    sent = {o["facets"]["version"]["datasetVersion"] for rid in trainings["run_id"]
            for o in by_run[rid]["COMPLETE"]["outputs"] if o["namespace"] == "mlflow"}
    assert registered and sent == registered
    scored = record_of(lake, "tip_predictions", "2026-01-14")
    (model_in,) = [i for i in by_run[scored["run_id"]]["COMPLETE"]["inputs"] if i["namespace"] == "mlflow"]
    assert model_in["name"] == "tip_model" and model_in["facets"]["datasetType"]["datasetType"] == "MODEL"
