"""A real OpenLineage HTTP backend on 127.0.0.1 for the tests (no mock client, no mock server):
it records every event POSTed to ``/api/v1/lineage`` and can be told to answer 500 or to hang."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class LineageBackend:
    """``mode``: ``ok`` (201, like Marquez), ``500`` (always), ``hang`` (no answer until released)."""

    def __init__(self, mode: str = "ok"):
        self.mode = mode
        self.events: list[dict] = []
        self.attempts = 0
        self._release = threading.Event()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if (self.headers.get("Content-Encoding") or "") == "gzip":
                    raw = gzip.decompress(raw)
                backend.attempts += 1
                mode = backend.mode
                if mode == "hang":
                    backend._release.wait(60)
                    return  # the client has given up; nothing is answered
                if mode == "500":
                    self.send_response(500)
                else:
                    backend.events.append(json.loads(raw))
                    self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> LineageBackend:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def by_run(self) -> dict[str, dict[str, dict]]:
        """OpenLineage run id -> event type -> event."""
        out: dict[str, dict[str, dict]] = {}
        for e in self.events:
            out.setdefault(e["run"]["runId"], {})[e["eventType"]] = e
        return out

    def wait_for(self, n: int, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while len(self.events) < n and time.time() < deadline:
            time.sleep(0.05)
        assert len(self.events) >= n, f"{len(self.events)} events arrived, {n} expected"


@pytest.fixture
def backend():
    with LineageBackend() as b:
        yield b


def client_config(tmp_path: Path, url: str, *, timeout: float = 5.0) -> str:
    """An ``openlineage.yml`` for the client's standard configuration (OPENLINEAGE_CONFIG)."""
    path = tmp_path / "openlineage.yml"
    path.write_text(f"transport:\n  type: http\n  url: {url}\n  timeout: {timeout}\n  retry:\n    total: 0\n")
    return str(path)


@pytest.fixture
def point_to(tmp_path, monkeypatch):
    """Point OpenLineage publishing (and commands) at a backend, through OPENLINEAGE_CONFIG."""
    def point(url: str, *, timeout: float = 5.0, retries: int = 1) -> None:
        monkeypatch.setenv("OPENLINEAGE_CONFIG", client_config(tmp_path, url, timeout=timeout))
        monkeypatch.setenv("TRACELAKE_OPENLINEAGE_RETRIES", str(retries))
    return point


def _versions(datasets: list[dict]) -> dict[str, str | None]:
    return {d["name"].rstrip("/").rsplit("/", 1)[-1] if d["namespace"] == "file" else f"model:{d['name']}":
            (d.get("facets") or {}).get("version", {}).get("datasetVersion") for d in datasets}


def _pairs(datasets: list[dict]) -> set[tuple[str, str | None]]:
    """Every (dataset, version) pair, where ``_versions`` keeps one version per name."""
    return {next(iter(_versions([d]).items())) for d in datasets}


def match_records(lake, events: list[dict]) -> dict[str, dict[str, dict]]:
    """Check, field by field, that ``events`` are the audit records of ``lake`` (every run that is
    not external: START + its terminal event); returns the events by Tracelake run id and type."""
    from tracelake.lineage.openlineage.ids import is_uuid
    from tracelake.lineage.record.audit_tables import CHECK_RESULTS

    runs = lake.store.component_runs(include_open=True)
    runs = runs[~runs["component"].astype(str).str.startswith("external:")]
    checks = lake.store.read(CHECK_RESULTS)
    by_run: dict[str, dict[str, dict]] = {}
    for e in events:
        by_run.setdefault(e["run"]["facets"]["tracelake"]["runId"], {})[e["eventType"]] = e
    terminal = {"succeeded": "COMPLETE", "skipped": "COMPLETE", "failed": "FAIL", "abandoned": "ABORT"}
    assert set(by_run) == set(runs["run_id"]), "every run, and only the runs, have events"
    for rec in runs.to_dict("records"):
        got = by_run[rec["run_id"]]
        want = {"START"} | ({terminal[rec["status"]]} if rec["status"] != "started" else set())
        assert set(got) == want, (rec["run_id"], rec["status"], set(got))
        parent = rec["dagster_run_id"] if rec["dagster_run_id"] and is_uuid(rec["dagster_run_id"]) else None
        for e in got.values():
            assert e["run"]["runId"] == rec["openlineage_run_id"] and e["job"]["name"] == rec["component"]
            assert e["run"]["facets"].get("parent", {}).get("run", {}).get("runId") == parent
        if rec["status"] == "started":
            continue
        end = got[terminal[rec["status"]]]
        assert end["run"]["facets"]["tracelake"]["recordHash"] == rec["record_hash"]
        # one dataset per (table, version): drift reads the reference day at one version of a
        # table and today at another, and both are inputs
        tables_in = {(i["name"], str(int(i["version"]))) for i in rec["inputs"] if i["kind"] == "table"}
        models_in = {(f"model:{i['name']}", str(i["model_version"])) for i in rec["inputs"] if i["kind"] == "model"}
        assert _pairs(end["inputs"]) == tables_in | models_in, rec["run_id"]
        read: dict[tuple[str, str], list[str]] = {}     # a table read twice at one version is one dataset
        for i in (i for i in rec["inputs"] if i["kind"] == "table" and i.get("partitions") is not None
                  and len(i["partitions"])):
            key = (i["name"], str(int(i["version"])))
            read.setdefault(key, [])
            read[key] += [p for p in i["partitions"] if p not in read[key]]
        for (table, version), partitions in read.items():
            (ev,) = [d for d in end["inputs"] if d["name"].endswith(f"/tables/{table}")
                     and d["facets"]["version"]["datasetVersion"] == version]
            assert [p["identifier"] for p in ev["inputFacets"]["subset"]["inputCondition"]["partitions"]] == partitions
        if rec["output_table"] is None:
            continue
        outputs = _versions(end["outputs"])
        main_out = outputs.get(rec["output_table"])
        want_version = None if rec["output_version"] is None else str(int(rec["output_version"]))
        assert main_out == want_version, (rec["run_id"], main_out, rec["output_version"])
        (out,) = [d for d in end["outputs"] if d["name"].endswith(f"/tables/{rec['output_table']}")]
        if want_version is not None:
            stats = out["outputFacets"]["outputStatistics"]
            assert (stats.get("rowCount"), stats.get("size"), stats.get("fileCount")) == (
                rec["output_rows"], rec["output_bytes"], rec["output_files"])
        for model in rec["models"] if rec["models"] is not None else []:
            if model["role"] == "registered":
                assert outputs[f"model:{model['name']}"] == str(model["version"])
        mine = checks[checks["run_id"] == rec["run_id"]] if len(checks) else checks
        assertions = (out["facets"].get("dataQualityAssertions") or {}).get("assertions", [])
        assert {(a["name"], a["success"]) for a in assertions} == \
            {(c["check_name"], bool(c["passed"])) for c in mine.to_dict("records")}
        if rec["status"] in ("failed", "abandoned"):
            message = end["run"]["facets"]["errorMessage"]["message"]
            assert rec["error_message"][:100] in message
    return by_run


@pytest.fixture
def records_match():
    return match_records
