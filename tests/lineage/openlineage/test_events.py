"""OpenLineage events from audit records, and the publisher's delivery guarantees - no Spark.

Records are written into a real journal the way the recorder writes them; events go through the
official client to a real HTTP backend on 127.0.0.1 (``conftest.LineageBackend``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from openlineage.client.serde import Serde

from tracelake.jobs.cli import main
from tracelake.lineage import open_lakehouse
from tracelake.lineage.openlineage.events import EventBuilder, EventContext
from tracelake.lineage.openlineage.ids import external_run_id, find_by_openlineage_id, is_uuid, openlineage_run_id
from tracelake.lineage.openlineage.naming import dataset_id, dataset_uri, table_for_uri
from tracelake.lineage.openlineage.outbox import Outbox
from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
from tracelake.lineage.record.chain import normalize_row
from tracelake.lineage.record.listeners import notify
from tracelake.lineage.record.runid import new_run_id, run_id_time


def make_record(home: str, **fields) -> dict:
    """A component-run record as the recorder journals it (final unless status='started')."""
    run_id = fields.pop("run_id", None) or new_run_id()
    started = datetime.now(UTC)
    rec = {
        "run_id": run_id, "component": "cleaned_trips", "asset_key": "cleaned_trips", "partition_key": "2026-01-14",
        "dagster_run_id": str(uuid.uuid4()), "status": "succeeded", "started_at": started,
        "ended_at": started + timedelta(seconds=2), "duration_ms": 2000.0, "code_version": "abc123",
        "git_commit": "9" * 40, "git_branch": "main", "git_dirty": False, "source_hash": "5" * 64,
        "library_versions": {"pyspark": "4.2.0", "tracelake": "0.1.0"}, "owner": "team:data", "tags": {},
        "lineage_keys_json": json.dumps({"raw_trips": ["trip_id", "day=pickup_date"]}),
        "inputs": [{"kind": "table", "name": "raw_trips", "path": f"{home}/tables/raw_trips", "version": 7,
                    "partitions": ["2026-01-14"], "missing_partitions": None},
                   {"kind": "model", "name": "tip_model", "model_version": "2", "mlflow_run_id": "m1",
                    "uri": "models:/tip_model/2"}],
        "output_table": "cleaned_trips", "output_path": f"{home}/tables/cleaned_trips", "output_version": 12,
        "output_rows": 400, "output_files": 2, "output_bytes": 12345, "output_partitions": ["2026-01-14"],
        "output_schema_json": json.dumps([{"name": "trip_id", "type": "string", "nullable": True},
                                          {"name": "fare_amount", "type": "double", "nullable": True}]),
        "write_mode": "partition", "models": [], "metrics": {"rows_in": 400.0},
        "mlflow_run_id": "abc", "mlflow_run_url": "http://127.0.0.1:5000/#/experiments/1/runs/abc",
        "openlineage_run_id": openlineage_run_id(run_id), "host": "worker-1", "pid": 1,
    }
    rec.update(fields)
    return normalize_row(rec, COMPONENT_RUNS.schema)


CHECKS = [{"check_id": "c1", "run_id": None, "check_name": "fare_range", "severity": "warn", "passed": True,
           "blocking": False, "observed_value": 0.0, "threshold_text": "<= 1%", "failing_rows": 0,
           "details_json": json.dumps({"column": "fare_amount"})},
          {"check_id": "c2", "run_id": None, "check_name": "raw_schema", "severity": "error", "passed": False,
           "blocking": True, "observed_text": "fare_usd: string", "threshold_text": "fare_amount: double"}]


def builder(home: str, schemas: dict | None = None) -> EventBuilder:
    from tracelake.lineage.layout import Layout

    return EventBuilder(EventContext(Layout(home), namespace="tracelake", repo_url="https://git.example/tl.git",
                                     schema_of=lambda path, version: (schemas or {}).get((path, version))))


def as_json(event) -> dict:
    return json.loads(Serde.to_json(event))


# -- ids and names ---------------------------------------------------------------------------------
def test_run_ids_map_both_ways():
    run_id = new_run_id()
    ol = openlineage_run_id(run_id)
    assert is_uuid(ol) and uuid.UUID(ol).version == 7
    assert ol == openlineage_run_id(run_id)                       # deterministic: export replays the same ids
    assert int(uuid.UUID(ol).hex[:12], 16) == int(run_id_time(run_id).timestamp() * 1000)   # same start ms
    others = [(new_run_id(), None) for _ in range(50)]
    assert find_by_openlineage_id([*others, (run_id, None)], ol) == run_id          # derived (old records)
    assert find_by_openlineage_id([*others, ("X" * 26, ol)], ol) == "X" * 26           # recorded
    assert external_run_id(ol, "/t", 1_700_000_000_000) == external_run_id(ol, "/t", 1_700_000_000_000)
    assert run_id_time(external_run_id(ol, "/t", 1_700_000_000_000)).timestamp() == 1_700_000_000


def test_dataset_names_follow_the_openlineage_convention(tmp_path):
    from tracelake.lineage.layout import Layout

    home = str(tmp_path / "lake")
    assert dataset_id(f"{home}/tables/t/") == ("file", f"{home}/tables/t")
    assert dataset_id("s3a://bucket/lake/tables/t") == ("s3://bucket", "lake/tables/t")
    assert dataset_uri("file", f"{home}/tables/t") == f"{home}/tables/t"
    assert table_for_uri(Layout(home), dataset_uri(*dataset_id(f"{home}/tables/t"))) == "t"
    assert table_for_uri(Layout(home), "/elsewhere/t") is None


# -- events from records ---------------------------------------------------------------------------
def test_a_succeeded_run_is_start_and_complete_with_every_fact_of_the_record(tmp_path):
    home = str(tmp_path / "lake")
    rec = make_record(home, models=[{"role": "registered", "name": "tip_model", "version": "3", "uri": None,
                                     "mlflow_run_id": "m2"}])
    raw_schema = json.dumps({"type": "struct", "fields": [{"name": "trip_id", "type": "string"}]})
    start, end = (as_json(e) for e in builder(home, {(f"{home}/tables/raw_trips", 7): raw_schema}).events(rec, CHECKS))

    for e in (start, end):
        assert e["run"]["runId"] == rec["openlineage_run_id"]
        assert e["job"] == {**e["job"], "namespace": "tracelake", "name": "cleaned_trips"}
        facets = e["run"]["facets"]
        assert facets["parent"]["run"]["runId"] == rec["dagster_run_id"]
        assert facets["nominalTime"]["nominalStartTime"] == "2026-01-14T00:00:00.000000Z"
        assert facets["processing_engine"]["name"] == "spark" and facets["processing_engine"]["version"] == "4.2.0"
        assert facets["tracelake"]["runId"] == rec["run_id"] and facets["tracelake"]["sourceHash"] == "5" * 64
        scl = e["job"]["facets"]["sourceCodeLocation"]
        assert scl["version"] == "9" * 40 and scl["url"] == "https://git.example/tl.git"
    assert start["eventType"] == "START" and end["eventType"] == "COMPLETE"
    assert start["eventTime"] < end["eventTime"] and start["inputs"] == []
    assert start["outputs"][0]["name"] == f"{home}/tables/cleaned_trips"

    table_in, model_in = end["inputs"]
    assert (table_in["namespace"], table_in["name"]) == ("file", f"{home}/tables/raw_trips")
    assert table_in["facets"]["version"]["datasetVersion"] == "7"
    assert [f["name"] for f in table_in["facets"]["schema"]["fields"]] == ["trip_id"]
    assert table_in["inputFacets"]["subset"]["inputCondition"]["partitions"][0]["identifier"] == "2026-01-14"
    assert (model_in["namespace"], model_in["name"], model_in["facets"]["version"]["datasetVersion"]) == \
        ("mlflow", "tip_model", "2")

    out, model_out = end["outputs"]
    assert out["facets"]["version"]["datasetVersion"] == "12"
    assert out["outputFacets"]["outputStatistics"] == {**out["outputFacets"]["outputStatistics"],
                                                       "rowCount": 400, "size": 12345, "fileCount": 2}
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == ["trip_id", "fare_amount"]
    lineage = out["facets"]["columnLineage"]["fields"]
    assert lineage["trip_id"]["inputFields"][0]["field"] == "trip_id"
    assert lineage["day"]["inputFields"][0] == {**lineage["day"]["inputFields"][0], "field": "pickup_date",
                                                 "name": f"{home}/tables/raw_trips"}
    assertions = {a["name"]: a for a in out["facets"]["dataQualityAssertions"]["assertions"]}
    assert assertions["fare_range"]["success"] is True and assertions["fare_range"]["column"] == "fare_amount"
    assert assertions["raw_schema"]["success"] is False and assertions["raw_schema"]["actual"] == "fare_usd: string"
    assert model_out["facets"]["version"]["datasetVersion"] == "3" and model_out["namespace"] == "mlflow"


@pytest.mark.parametrize(("status", "event_type"),
                         [("failed", "FAIL"), ("abandoned", "ABORT"), ("skipped", "COMPLETE")])
def test_the_final_status_decides_the_terminal_event(tmp_path, status, event_type):
    home = str(tmp_path / "lake")
    rec = make_record(home, status=status, output_version=None, error_type="tracelake.BlockingCheckFailed",
                      error_message="blocking test raw_schema failed", error_trace="Traceback ...")
    end = as_json(builder(home).end(rec, CHECKS))
    assert end["eventType"] == event_type
    assert "version" not in end["outputs"][0]["facets"]            # no version was written
    if event_type != "COMPLETE":
        error = end["run"]["facets"]["errorMessage"]
        assert error["message"] == "tracelake.BlockingCheckFailed: blocking test raw_schema failed"
        assert error["programmingLanguage"] == "python" and error["stackTrace"] == "Traceback ..."


def test_quarantine_and_rejected_outputs_carry_their_version_rows_and_schema(tmp_path):
    home = str(tmp_path / "lake")
    rec = make_record(home, quarantine_table="cleaned_trips__quarantine", quarantine_version=3, quarantined_rows=5,
                      rejected_table="cleaned_trips__rejected", rejected_version=0, rejected_rows=400)
    # Their schemas come from each table's log at that version, as an input's do.
    schemas = {(f"{home}/tables/cleaned_trips__quarantine", 3): json.dumps(
                   {"type": "struct", "fields": [{"name": "trip_id", "type": "string", "nullable": True},
                                                 {"name": "_tl_failed_checks", "type": "string", "nullable": True}]}),
               (f"{home}/tables/cleaned_trips__rejected", 0): json.dumps(
                   {"type": "struct", "fields": [{"name": "trip_id", "type": "long", "nullable": False}]})}
    end = as_json(builder(home, schemas).end(rec))
    sides = {o["name"].rsplit("/", 1)[-1]: o for o in end["outputs"]}
    quarantine, rejected = sides["cleaned_trips__quarantine"], sides["cleaned_trips__rejected"]
    assert (quarantine["facets"]["version"]["datasetVersion"], rejected["facets"]["version"]["datasetVersion"]) == ("3", "0")
    assert quarantine["outputFacets"]["outputStatistics"]["rowCount"] == 5
    assert rejected["outputFacets"]["outputStatistics"]["rowCount"] == 400
    assert [(f["name"], f["type"]) for f in quarantine["facets"]["schema"]["fields"]] == [
        ("trip_id", "string"), ("_tl_failed_checks", "string")]
    assert [(f["name"], f["type"]) for f in rejected["facets"]["schema"]["fields"]] == [("trip_id", "long")]
    # A version whose schema cannot be read any more: the dataset still goes out, without the facet.
    rec = make_record(home, quarantine_table="cleaned_trips__quarantine", quarantine_version=9, quarantined_rows=1)
    (gone,) = [o for o in as_json(builder(home, schemas).end(rec))["outputs"] if o["name"].endswith("__quarantine")]
    assert "schema" not in gone["facets"] and gone["facets"]["version"]["datasetVersion"] == "9"


# -- the publisher ---------------------------------------------------------------------------------
def _run_through(lake, rec: dict, checks: list[dict] | None = None) -> dict:
    """What the recorder does: open marker, (checks), final record - telling the listeners."""
    opened = {**rec, "status": "started", "ended_at": None}
    lake.journal.open_run(rec["run_id"], opened)
    notify(lake.listeners, "run_started", opened)
    if checks:
        notify(lake.listeners, "checks_recorded", [{**c, "run_id": rec["run_id"]} for c in checks])
    final = lake.journal.append(COMPONENT_RUNS, rec["run_id"], rec, close_run=rec["run_id"])
    notify(lake.listeners, "run_finished", final)
    return final


def test_the_publisher_sends_what_the_records_say(tmp_path, backend, point_to):
    point_to(backend.url)
    home = str(tmp_path / "lake")
    lake = open_lakehouse(home)
    (publisher,) = lake.listeners
    finals = [_run_through(lake, make_record(home), CHECKS), _run_through(lake, make_record(home, status="failed"))]
    assert publisher.flush(30)
    backend.wait_for(4)
    got = backend.by_run()
    for final in finals:
        events = got[final["openlineage_run_id"]]
        assert set(events) == {"START", "COMPLETE" if final["status"] == "succeeded" else "FAIL"}
        assert events["START"]["run"]["facets"]["tracelake"]["runId"] == final["run_id"]
    complete = got[finals[0]["openlineage_run_id"]]["COMPLETE"]
    assert complete["run"]["facets"]["tracelake"]["recordHash"] == finals[0]["record_hash"]
    assert len(complete["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]) == 2
    assert Outbox(lake.settings.openlineage_dir).pending() == []


def test_a_failing_backend_costs_the_run_nothing_and_resend_delivers_later(tmp_path, backend, point_to, capsys):
    backend.mode = "500"
    point_to(backend.url, retries=1)
    home = str(tmp_path / "lake")
    lake = open_lakehouse(home)
    (publisher,) = lake.listeners
    finals = [_run_through(lake, make_record(home)) for _ in range(3)]
    assert publisher.flush(30)
    outbox = Outbox(lake.settings.openlineage_dir)
    pending = outbox.pending()
    assert {(p.run_id, p.kind) for p in pending} == {(f["run_id"], k) for f in finals for k in ("start", "end")}
    assert backend.attempts == 2           # the first event: tried, retried once; then the circuit opened
    assert "500" in pending[0].reason or "Server Error" in pending[0].reason or any("500" in p.reason for p in pending)

    backend.mode = "ok"
    assert main(["--home", home, "openlineage", "resend"]) == 0
    assert "resent 6 events; 0 still undelivered" in capsys.readouterr().out
    got = backend.by_run()
    assert {f["openlineage_run_id"] for f in finals} == set(got)
    assert all(set(got[f["openlineage_run_id"]]) == {"START", "COMPLETE"} for f in finals)
    assert outbox.pending() == [] and outbox.counters()["resent"] == 6


def test_a_hanging_backend_never_holds_up_the_listener(tmp_path, backend, point_to):
    backend.mode = "hang"
    point_to(backend.url, timeout=1.0, retries=0)
    home = str(tmp_path / "lake")
    lake = open_lakehouse(home)
    (publisher,) = lake.listeners
    records = [make_record(home) for _ in range(100)]
    costs = []
    for rec in records:
        opened = {**rec, "status": "started"}
        t0 = time.perf_counter()
        publisher.run_started(opened)
        publisher.run_finished(rec)
        costs.append((time.perf_counter() - t0) * 1000)
    # Milliseconds, both calls together; the very first also starts the sender thread (once per process).
    assert statistics.median(costs) < 0.5 and max(costs[1:]) < 20, costs
    assert publisher.flush(30)
    assert len(Outbox(lake.settings.openlineage_dir).pending()) == 200
    assert backend.attempts <= 2          # one timeout, then straight to the outbox (circuit open)


def test_a_full_queue_sends_to_the_outbox_not_back_to_the_run(tmp_path, backend, point_to, monkeypatch):
    backend.mode = "hang"
    point_to(backend.url, timeout=2.0, retries=0)
    monkeypatch.setenv("TRACELAKE_OPENLINEAGE_QUEUE", "3")
    home = str(tmp_path / "lake")
    lake = open_lakehouse(home)
    (publisher,) = lake.listeners
    for rec in [make_record(home) for _ in range(10)]:
        publisher.run_finished(rec)
    reasons = [p.reason for p in Outbox(lake.settings.openlineage_dir).pending()]
    assert any("queue was full" in r for r in reasons)
    assert publisher.flush(30) and len(Outbox(lake.settings.openlineage_dir).pending()) == 10


def test_export_replays_the_history_with_the_live_ids(tmp_path, backend, point_to, capsys):
    home = str(tmp_path / "lake")
    lake = open_lakehouse(home)      # publishing to the default JSON lines in the lakehouse
    finals = [_run_through(lake, make_record(home)), _run_through(lake, make_record(home, component="features"))]
    assert lake.listeners[0].flush(30)
    live = [json.loads(line) for line in open(f"{home}/openlineage/events.jsonl")]
    assert len(live) == 4

    point_to(backend.url)
    assert main(["--home", home, "openlineage", "export", "--component", "features"]) == 0
    assert "exported 2 events of 1 runs" in capsys.readouterr().out
    assert set(backend.by_run()) == {finals[1]["openlineage_run_id"]}
    assert main(["--home", home, "openlineage", "export", "--since", "2000-01-01"]) == 0
    replayed = {(e["run"]["runId"], e["eventType"]): e for e in backend.events}
    for event in live:      # the same events, whether sent live or replayed from the record
        assert replayed[(event["run"]["runId"], event["eventType"])] == event
    assert main(["--home", home, "openlineage", "export", "--component", "nope"]) == 2
    backend.mode = "500"
    assert main(["--home", home, "openlineage", "export", "--since", "2000-01-01"]) == 2
    assert "nothing was skipped - continue with --since 20" in capsys.readouterr().err


# -- process exit: a failing backend costs no wait, and the next process backs off ---------------
NEXT_STEP = textwrap.dedent('''
    """A Dagster step process: two runs published, then the interpreter exits (the exit watcher closes)."""
    import json, sys, time
    from datetime import UTC, datetime, timedelta
    from tracelake.lineage import open_lakehouse
    from tracelake.lineage.openlineage.ids import openlineage_run_id
    from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
    from tracelake.lineage.record.chain import normalize_row
    from tracelake.lineage.record.listeners import notify
    from tracelake.lineage.record.runid import new_run_id

    lake = open_lakehouse(sys.argv[1])
    for _ in range(2):
        run_id, started = new_run_id(), datetime.now(UTC)
        rec = normalize_row({"run_id": run_id, "component": "next_step", "status": "succeeded", "started_at": started,
                             "ended_at": started + timedelta(seconds=1), "openlineage_run_id": openlineage_run_id(run_id)},
                            COMPONENT_RUNS.schema)
        opened = {**rec, "status": "started", "ended_at": None}
        lake.journal.open_run(run_id, opened)
        notify(lake.listeners, "run_started", opened)
        notify(lake.listeners, "run_finished", lake.journal.append(COMPONENT_RUNS, run_id, rec, close_run=run_id))
    print(json.dumps({"done_at": time.time()}), flush=True)
''')


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(condition())


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_at_exit_a_failing_backend_costs_no_wait_and_the_next_process_backs_off(tmp_path, backend, point_to, capsys,
                                                                                 mode):
    backend.mode = mode
    point_to(backend.url, timeout=2.0, retries=1)
    home = str(tmp_path / "lake")
    lake = open_lakehouse(home)
    (publisher,) = lake.listeners
    finals = [_run_through(lake, make_record(home)) for _ in range(3)]
    assert _wait_until(lambda: backend.attempts >= 1, 30)      # the first event is at the backend
    t0 = time.perf_counter()
    publisher.close()                                          # what the exit watcher calls
    took = time.perf_counter() - t0
    assert took < 0.5, took                                    # no waiting for the 500's retry, or for the hang
    outbox = Outbox(lake.settings.openlineage_dir)
    assert {(p.run_id, p.kind) for p in outbox.pending()} == {(f["run_id"], k) for f in finals for k in ("start", "end")}
    # Noted for every process of this lakehouse: at once for the 500, at the transport's timeout
    # for the hang (the stuck call fails then; its event is in the outbox already, once).
    assert _wait_until(lambda: outbox.backend_failure() is not None, 10)
    assert outbox.counters()["failed"] == 6 and len(outbox.pending()) == 6
    assert main(["--home", home, "openlineage", "status"]) == 0
    assert "backing off" in capsys.readouterr().out

    # The next step process starts in back-off: it never calls the backend, and exits at once.
    attempts = backend.attempts
    script = tmp_path / "next_step.py"
    script.write_text(NEXT_STEP)
    proc = subprocess.run([sys.executable, str(script), home], capture_output=True, text=True, timeout=120)
    exited = time.time()
    assert proc.returncode == 0, proc.stderr[-2000:]
    done_at = json.loads(proc.stdout.strip().splitlines()[-1])["done_at"]
    assert exited - done_at < 1.5, exited - done_at             # the exit watcher outboxed, did not wait
    assert backend.attempts == attempts
    pending = outbox.pending()
    assert len(pending) == 10 and all(p.attempts == 0 and "backend failed" in p.reason
                                      for p in pending if p.run_id not in {f["run_id"] for f in finals})

    backend.mode = "ok"
    assert main(["--home", home, "openlineage", "resend"]) == 0
    assert "resent 10 events; 0 still undelivered" in capsys.readouterr().out
    got = backend.by_run()
    assert len(got) == 5 and all(set(events) == {"START", "COMPLETE"} for events in got.values())
    assert outbox.pending() == [] and outbox.backend_failure() is None    # delivering again: no back-off
    assert main(["--home", home, "openlineage", "status"]) == 0
    assert "backing off" not in capsys.readouterr().out


def test_at_exit_an_answering_backend_still_gets_the_whole_queue(tmp_path, backend, point_to):
    point_to(backend.url)
    home = str(tmp_path / "lake")
    lake = open_lakehouse(home)
    (publisher,) = lake.listeners
    finals = [_run_through(lake, make_record(home)) for _ in range(10)]
    publisher.close()                                          # at once: the queue is still full
    assert len(backend.events) == 20 and set(backend.by_run()) == {f["openlineage_run_id"] for f in finals}
    assert Outbox(lake.settings.openlineage_dir).pending() == []


def test_an_answer_overdue_at_exit_counts_as_a_failure(tmp_path, backend, point_to):
    from tracelake.lineage.openlineage.publisher import HUNG_SECONDS

    backend.mode = "hang"
    point_to(backend.url, timeout=30.0, retries=0)
    home = str(tmp_path / "lake")
    lake = open_lakehouse(home)
    (publisher,) = lake.listeners
    _run_through(lake, make_record(home))
    assert _wait_until(lambda: backend.attempts >= 1, 30)
    time.sleep(HUNG_SECONDS + 0.1)
    t0 = time.perf_counter()
    publisher.close()
    assert time.perf_counter() - t0 < 0.5
    outbox = Outbox(lake.settings.openlineage_dir)
    error, _ = outbox.backend_failure()                        # noted now, not 30 s later at the timeout
    assert "no answer" in error and len(outbox.pending()) == 2
