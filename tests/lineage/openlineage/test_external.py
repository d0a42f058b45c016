"""Runs of other producers joined to the audit graph - no Spark: the Delta tables are written with
delta-rs, the events are what an OpenLineage producer sends (the Spark listener's shape: an
application run, and one run per write with the application as parent)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pandas as pd
import pytest
from deltalake import write_deltalake

from tracelake.jobs.cli import main
from tracelake.lineage import open_lakehouse
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.lineage.openlineage.receiver import import_path, make_server
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.query.impact import impact
from tracelake.lineage.query.trace import trace
from tracelake.lineage.record import delta_meta
from tracelake.monitors.compliance.closure import upstream_closure


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(kind: str, run_id: str, job: str, *, inputs=(), outputs=(), parent: tuple[str, str] | None = None,
          facets: dict | None = None) -> dict:
    run_facets = dict(facets or {})
    if parent:
        run_facets["parent"] = {"run": {"runId": parent[1]}, "job": {"namespace": "spark", "name": parent[0]}}
    return {"eventType": kind, "eventTime": now(), "producer": "https://example.test/producer",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id, "facets": run_facets}, "job": {"namespace": "spark", "name": job},
            "inputs": list(inputs), "outputs": list(outputs)}


def ds(path: str, version: int | None = None) -> dict:
    facets = {"version": {"datasetVersion": str(version)}} if version is not None else {}
    return {"namespace": "file", "name": path, "facets": facets}


def write(path: str, rows: int, mode: str = "append") -> int:
    write_deltalake(path, pd.DataFrame({"trip_id": [f"t{i}" for i in range(rows)], "fare": [1.5] * rows}), mode=mode)
    return delta_meta.latest_version(path)


def external_job(home: str, tmp_path, *, source_version: int | None = None, write_output: int = 1,
                 name: str = "enrich") -> tuple[list[dict], str]:
    """The events of one application that reads ``src`` and writes ``dst`` (``write_output``
    commits land during the write run); returns (events, file they were saved to)."""
    src, dst = f"{home}/tables/src", f"{home}/tables/dst"
    app, action = str(uuid.uuid4()), str(uuid.uuid4())
    job = f"{name}.execute_save_into_data_source_command.tables_dst"
    events = [event("START", app, name)]
    time.sleep(0.01)
    events.append(event("START", action, job, inputs=[ds(src, source_version)], outputs=[ds(dst)], parent=(name, app)))
    time.sleep(0.01)
    for _ in range(write_output):
        write(dst, 3, "overwrite")
    time.sleep(0.01)
    events.append(event("COMPLETE", action, job, inputs=[ds(src, source_version)], outputs=[ds(dst)],
                        parent=(name, app)))
    events.append(event("COMPLETE", app, name))
    out = tmp_path / f"events-{action[:8]}.jsonl"
    out.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return events, str(out)


@pytest.fixture
def lake_with_source(tmp_path):
    home = str(tmp_path / "lake")
    write(f"{home}/tables/src", 5)
    write(f"{home}/tables/src", 5)          # src@v1
    return open_lakehouse(home)


def test_an_external_run_is_recorded_with_versions_established_from_the_log(lake_with_source, tmp_path):
    lake = lake_with_source
    home = lake.settings.home
    _, path = external_job(home, tmp_path)
    stored, duplicates, done = import_path(lake, path)
    assert (stored, duplicates, len(done.recorded), len(done.ignored)) == (4, 0, 1, 1)   # the app run writes nothing
    runs = lake.store.component_runs().set_index("run_id")
    rec = runs.loc[done.recorded[0]["run_id"]]
    assert rec["component"] == "external:enrich" and rec["status"] == "succeeded"
    assert rec["tags"]["tracelake.external"] == "true"
    (inp,) = rec["inputs"]
    assert (inp["kind"], inp["name"], inp["version"]) == ("table", "src", 1)
    assert rec["tags"]["tracelake.external.input.src"].startswith("v1 inferred")
    assert rec["tags"]["tracelake.external.verified"] == "false"      # inferred is not verified
    assert (rec["output_table"], rec["output_version"], rec["output_rows"]) == ("dst", 0, 3)
    assert rec["tags"]["tracelake.external.output"].startswith("v0 verified")
    assert rec["write_mode"] == "overwrite" and rec["openlineage_run_id"] == done.recorded[0]["openlineage_run_id"]
    # Importing the same events again records nothing twice.
    assert import_path(lake, path)[:2] == (0, 4)
    assert len(lake.store.component_runs()) == 1
    report = verify_lakehouse(lake)
    # src was written by nobody the record knows (delta-rs, in this test): that is all verify finds.
    assert report.external_runs == 1 and all(p.startswith("src@") for p in report.problems), report.problems


def test_a_version_facet_is_checked_against_the_log(lake_with_source, tmp_path):
    lake = lake_with_source
    home = lake.settings.home
    import_path(lake, external_job(home, tmp_path, source_version=0)[1])
    import_path(lake, external_job(home, tmp_path, source_version=42)[1])
    recs = lake.store.component_runs().sort_values("run_id").to_dict("records")
    good, bad = recs
    assert good["inputs"][0]["version"] == 0 and good["inputs"][0]["kind"] == "table"
    assert good["tags"]["tracelake.external.input.src"].startswith("v0 verified")
    assert good["tags"]["tracelake.external.verified"] == "true"
    # A version the log does not have is kept as said, flagged, and never followed.
    assert bad["inputs"][0]["kind"] == "unverified" and bad["inputs"][0]["version"] == 42
    assert "not in the Delta log" in bad["tags"]["tracelake.external.input.src"]
    result = trace(lake, "dst", as_of=1)
    labels = [n.label for n in result.nodes.values()]
    assert any("src@v42: not followed" in label for label in labels), labels
    # A compliance report's evidence follows only what the log confirmed: the same hop is skipped, with why.
    closure = upstream_closure(AuditIndex(lake), [good["run_id"], bad["run_id"]])
    assert [e["input"] for e in closure.edges if e["child"] == bad["run_id"]] == []
    (skip,) = [s for s in closure.skipped if s["child"] == bad["run_id"]]
    assert skip["input"] == "src@v42" and "not in the Delta log" in skip["reason"]
    assert not [s for s in closure.skipped if s["child"] == good["run_id"]]       # verified: followed


def test_a_complete_without_a_commit_is_a_failed_run_and_several_commits_are_ambiguous(lake_with_source, tmp_path):
    lake = lake_with_source
    home = lake.settings.home
    write(f"{home}/tables/dst", 1)        # dst@v0, before the job: not its commit
    time.sleep(0.2)
    nothing = import_path(lake, external_job(home, tmp_path, write_output=0)[1])[2].recorded[0]
    twice = import_path(lake, external_job(home, tmp_path, write_output=2)[1])[2].recorded[0]
    runs = lake.store.component_runs().set_index("run_id")
    failed = runs.loc[nothing["run_id"]]
    assert failed["status"] == "failed" and failed["error_type"] == "tracelake.ExternalWriteNotFound"
    assert failed["output_version"] is None
    ambiguous = runs.loc[twice["run_id"]]
    assert ambiguous["output_version"] is None and ambiguous["tags"]["tracelake.external.verified"] == "false"
    assert ambiguous["tags"]["tracelake.external.output"].startswith("ambiguous: v1, v2")
    report = verify_lakehouse(lake)
    assert report.external_runs == 1 and any("ambiguous" in n for n in report.notes)   # the succeeded one
    assert not any(nothing["run_id"] in p or twice["run_id"] in p for p in report.problems)


def test_trace_and_impact_cross_an_external_run(lake_with_source, tmp_path):
    lake = lake_with_source
    home = lake.settings.home
    import_path(lake, external_job(home, tmp_path)[1])
    # dst has no _tl_run_id column: its rows belong to the run recorded for the commit that wrote them.
    result = trace(lake, "dst")
    (root,) = result.roots
    assert result.nodes[root].component == "external:enrich" and result.rows == 3
    edges = result.parents(root)          # src was written by no recorded run: its writers show as unrecorded
    assert {e.input for e in edges} == {"src@v1"}
    assert {result.nodes[e.parent].label for e in edges} == {"unrecorded writer unrecorded:src@v0",
                                                              "unrecorded writer unrecorded:src@v1"}
    assert [n.component for n in impact(lake, root).nodes.values()] == ["external:enrich"]


def test_the_http_endpoint_takes_events_from_the_openlineage_client(lake_with_source, tmp_path):
    """A producer using the official client (typed events, HTTP transport, gzip) sends to the
    server ``tracelake openlineage serve`` runs; a bad event is refused with 400, a retry stored once."""
    import threading

    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import parent_run

    lake = lake_with_source
    home = lake.settings.home
    server, _ = make_server(lake, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        client = OpenLineageClient(config={"transport": {"type": "http", "url": url, "compression": "gzip"}})
        app, action = str(uuid.uuid4()), str(uuid.uuid4())
        parent = {"parent": parent_run.ParentRunFacet(run=parent_run.Run(runId=app),
                                                      job=parent_run.Job(namespace="batch", name="nightly"))}

        def emit(kind, run_id, name, facets=None, io=False):
            client.emit(RunEvent(eventType=kind, eventTime=now(), run=Run(runId=run_id, facets=facets or {}),
                                 job=Job(namespace="batch", name=name), producer="https://example.test/producer",
                                 inputs=[InputDataset("file", f"{home}/tables/src")] if io else [],
                                 outputs=[OutputDataset("file", f"{home}/tables/dst")] if io else []))

        emit(RunState.START, app, "nightly")
        emit(RunState.START, action, "nightly.write_dst", parent, io=True)
        write(f"{home}/tables/dst", 3, "overwrite")
        emit(RunState.COMPLETE, action, "nightly.write_dst", parent, io=True)
        bad = Request(f"{url}/api/v1/lineage", data=b'{"eventTime": "yesterday"}', method="POST",
                      headers={"Content-Type": "application/json"})
        with pytest.raises(HTTPError) as refused:
            urlopen(bad, timeout=5)
        assert refused.value.code == 400 and "eventTime" in refused.value.read().decode()
        deadline = time.time() + 30
        while time.time() < deadline and not len(lake.store.component_runs()):
            time.sleep(0.1)
        status = json.loads(urlopen(f"{url}/api/v1/lineage/status", timeout=5).read())
        assert status["events"] == 3 and status["runs"] == {"recorded": 1}
        (rec,) = lake.store.component_runs().to_dict("records")
        assert rec["component"] == "external:nightly" and rec["output_version"] == 0
        assert rec["inputs"][0]["version"] == 1 and rec["openlineage_run_id"] == action
    finally:
        server.shutdown()
        server.server_close()


def test_import_from_the_command_line(lake_with_source, tmp_path, capsys):
    lake = lake_with_source
    folder = tmp_path / "events"
    folder.mkdir()
    external_job(lake.settings.home, folder)
    assert main(["--home", lake.settings.home, "openlineage", "import", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "stored 4 events" in out and "external:enrich" in out
    (folder / "broken.jsonl").write_text('{"eventTime": "2026-01-01T00:00:00Z", "run": {"runId": "r1"}}\n')
    assert main(["--home", lake.settings.home, "openlineage", "import", str(folder / "broken.jsonl")]) == 2
    assert "broken.jsonl:1: run.runId 'r1' is not a UUID" in capsys.readouterr().err


def test_spark_conf_and_status_say_how_to_attach_and_what_was_received(lake_with_source, tmp_path, capsys):
    lake = lake_with_source
    assert main(["--home", lake.settings.home, "openlineage", "spark-conf", "--url", "http://127.0.0.1:9999"]) == 0
    flags = capsys.readouterr().out
    assert "io.openlineage.spark.agent.OpenLineageSparkListener" in flags and "openlineage-spark_2.13-" in flags
    assert "spark.openlineage.transport.url=http://127.0.0.1:9999" in flags and "delta-spark_" in flags
    import_path(lake, external_job(lake.settings.home, tmp_path)[1])
    assert main(["--home", lake.settings.home, "openlineage", "status"]) == 0
    status = capsys.readouterr().out
    assert "received     4 events; runs: ignored 1, recorded 1; waiting 0" in status
