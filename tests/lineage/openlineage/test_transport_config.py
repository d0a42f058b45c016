"""Which transport publishing uses: whatever the OpenLineage client itself resolves from its
standard configuration (every documented form), JSON lines only where the client would fall back
to the console, and nothing at all - nothing counted as delivered - under OPENLINEAGE_DISABLED.
No Spark: records go through a real journal, events through the official client to a real
HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tracelake.jobs.cli import main
from tracelake.lineage import open_lakehouse
from tracelake.lineage.openlineage.ids import openlineage_run_id
from tracelake.lineage.openlineage.outbox import Outbox
from tracelake.lineage.openlineage.transport import DeliveryFailed, default_events_file, describe, make_client, send
from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
from tracelake.lineage.record.chain import normalize_row
from tracelake.lineage.record.listeners import notify
from tracelake.lineage.record.runid import new_run_id
from tracelake.lineage.settings import load_settings

URL = "http://127.0.0.1:9"      # never contacted: these cases only resolve the transport
HTTP_YAML = f"transport:\n  type: http\n  url: {URL}\n"


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No OpenLineage configuration from the machine: no OPENLINEAGE* variable, a working
    directory and a home of the test's own (so no ./openlineage.yml or ~/.openlineage/)."""
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(key)
    for folder in ("cwd", "home"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


class Server:
    """A real OpenLineage endpoint: ThreadingHTTPServer on 127.0.0.1 keeping every POST's path and event."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.received.append((self.path, json.loads(body)))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def record(home: str) -> dict:
    run_id = new_run_id()
    started = datetime.now(UTC)
    return normalize_row({"run_id": run_id, "component": "probe", "status": "succeeded", "started_at": started,
                          "ended_at": started + timedelta(seconds=1), "output_table": "probe",
                          "output_path": f"{home}/tables/probe", "openlineage_run_id": openlineage_run_id(run_id)},
                         COMPONENT_RUNS.schema)


def run_through(lake, rec: dict) -> dict:
    """What the recorder does: the open marker, then the final record - telling the listeners."""
    opened = {**rec, "status": "started", "ended_at": None}
    lake.journal.open_run(rec["run_id"], opened)
    notify(lake.listeners, "run_started", opened)
    final = lake.journal.append(COMPONENT_RUNS, rec["run_id"], rec, close_run=rec["run_id"])
    notify(lake.listeners, "run_finished", final)
    return final


def bare_client_kind() -> str:
    """The transport the client picks on its own (its aliases of OPENLINEAGE_URL removed again)."""
    from openlineage.client import OpenLineageClient

    before = set(os.environ)
    try:
        return OpenLineageClient().transport.kind
    finally:
        for key in set(os.environ) - before:
            del os.environ[key]


# (case, variables, files under the test's folder, transport kind, the client's own configuration?)
CASES = [
    ("nothing", {}, {}, "file", False),
    ("OPENLINEAGE__TRANSPORT json", {"OPENLINEAGE__TRANSPORT": json.dumps({"type": "http", "url": URL})}, {},
     "http", True),
    ("OPENLINEAGE__TRANSPORT__* keys", {"OPENLINEAGE__TRANSPORT__TYPE": "http", "OPENLINEAGE__TRANSPORT__URL": URL},
     {}, "http", True),
    ("console by type", {"OPENLINEAGE__TRANSPORT__TYPE": "console"}, {}, "console", True),
    ("composite", {"OPENLINEAGE__TRANSPORT__TYPE": "composite",
                   "OPENLINEAGE__TRANSPORT__TRANSPORTS__FIRST__TYPE": "console"}, {}, "composite", True),
    ("the user's own file transport", {"OPENLINEAGE__TRANSPORT__TYPE": "file", "OPENLINEAGE__TRANSPORT__APPEND": "true",
                                       "OPENLINEAGE__TRANSPORT__LOG_FILE_PATH": "{tmp}/mine.jsonl"}, {}, "file", True),
    ("OPENLINEAGE_URL", {"OPENLINEAGE_URL": URL, "OPENLINEAGE_ENDPOINT": "api/v1/lineage"}, {}, "http", True),
    ("OPENLINEAGE_CONFIG", {"OPENLINEAGE_CONFIG": "{tmp}/conf/ol.yml"}, {"conf/ol.yml": HTTP_YAML}, "http", True),
    ("./openlineage.yml", {}, {"cwd/openlineage.yml": HTTP_YAML}, "http", True),
    ("~/.openlineage/openlineage.yml", {}, {"home/.openlineage/openlineage.yml": HTTP_YAML}, "http", True),
    ("the file wins over variables", {"OPENLINEAGE_CONFIG": "{tmp}/conf/ol.yml", "OPENLINEAGE__TRANSPORT__TYPE": "http",
                                      "OPENLINEAGE__TRANSPORT__URL": URL},
     {"conf/ol.yml": "transport:\n  type: console\n"}, "console", True),
    ("a file without a transport", {"OPENLINEAGE_CONFIG": "{tmp}/conf/ol.yml"},
     {"conf/ol.yml": "facets:\n  environment_variables: []\n"}, "file", False),
    ("transport keys without a type", {"OPENLINEAGE__TRANSPORT__URL": URL}, {}, "file", False),
]


@pytest.mark.parametrize(("case", "variables", "files", "kind", "configured"), CASES, ids=[c[0] for c in CASES])
def test_every_documented_form_gives_the_transport_the_client_resolves(
        case, variables, files, kind, configured, clean_env, monkeypatch, caplog):
    tmp = clean_env
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    for key, value in variables.items():
        monkeypatch.setenv(key, value.replace("{tmp}", str(tmp)))
    settings = load_settings(home=str(tmp / "lake"))
    environment = dict(os.environ)
    with caplog.at_level(logging.WARNING, logger="tracelake.openlineage"):
        client = make_client(settings)
    assert (settings.openlineage_configured, client.transport.kind) == (configured, kind)
    assert dict(os.environ) == environment             # making a client leaves the environment as it was
    if configured:
        assert bare_client_kind() == kind               # exactly what the client resolves on its own
    else:
        # Only the client's own fallback - printing to the console - is replaced by the JSON lines.
        assert bare_client_kind() == "console"
        assert describe(client)["file"] == str(default_events_file(settings))
    if case == "the user's own file transport":
        assert describe(client)["file"] == str(tmp / "mine.jsonl")
    if case == "OPENLINEAGE_URL":
        assert describe(client)["url"] == URL
    warned = [r.getMessage() for r in caplog.records if "without a type" in r.getMessage()]
    assert bool(warned) == (case == "transport keys without a type"), warned


@pytest.mark.parametrize("form", ["OPENLINEAGE_URL", "OPENLINEAGE__TRANSPORT", "OPENLINEAGE__TRANSPORT__TYPE"])
def test_a_backend_given_in_any_env_form_receives_the_events(form, clean_env, server, monkeypatch):
    variables = {
        "OPENLINEAGE_URL": {"OPENLINEAGE_URL": server.url},
        "OPENLINEAGE__TRANSPORT": {"OPENLINEAGE__TRANSPORT": json.dumps({"type": "http", "url": server.url})},
        "OPENLINEAGE__TRANSPORT__TYPE": {"OPENLINEAGE__TRANSPORT__TYPE": "http",
                                         "OPENLINEAGE__TRANSPORT__URL": server.url},
    }[form]
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    home = str(clean_env / "lake")
    lake = open_lakehouse(home)
    (publisher,) = lake.listeners
    final = run_through(lake, record(home))
    assert publisher.flush(30)
    assert [(path, e["eventType"], e["run"]["runId"]) for path, e in server.received] == [
        ("/api/v1/lineage", t, final["openlineage_run_id"]) for t in ("START", "COMPLETE")]
    assert not default_events_file(lake.settings).exists()      # not replaced by the default JSON lines
    assert Outbox(lake.settings.openlineage_dir).counters() == {"delivered": 2}


def test_disabled_sends_nothing_and_counts_nothing_delivered(clean_env, server, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", server.url)
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    home = str(clean_env / "lake")
    lake = open_lakehouse(home)
    assert not lake.settings.openlineage and lake.listeners == []      # no publisher at all
    run_through(lake, record(home))
    client = make_client(lake.settings)
    assert client.transport.kind == "noop"
    with pytest.raises(DeliveryFailed, match="disabled"):            # a no-op "emit" is no delivery
        send(client, object(), retries=0)

    # Disabled after the settings were read, before the first event: sent nowhere, counted nowhere.
    monkeypatch.delenv("OPENLINEAGE_DISABLED")
    late = open_lakehouse(str(clean_env / "late"))
    (publisher,) = late.listeners
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    run_through(late, record(late.settings.home))
    assert publisher.flush(30)
    assert publisher.stats["delivered"] == 0 and publisher.stats["disabled"] == 2
    assert Outbox(late.settings.openlineage_dir).counters().get("delivered") is None
    assert Outbox(late.settings.openlineage_dir).pending() == []
    assert server.received == []


def test_resend_and_export_refuse_to_send_when_disabled(clean_env, server, monkeypatch, capsys):
    monkeypatch.setenv("TRACELAKE_OPENLINEAGE", "off")     # records only; the outbox entry is made by hand
    home = str(clean_env / "lake")
    lake = open_lakehouse(home)
    final = run_through(lake, record(home))
    outbox = Outbox(lake.settings.openlineage_dir)
    outbox.add(final["run_id"], "start", "delivery failed: the backend was down", event_type="START")
    monkeypatch.setenv("OPENLINEAGE_URL", server.url)
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    out = clean_env / "events.jsonl"
    for command in (["resend"], ["export"], ["export", "--out", str(out)]):
        assert main(["--home", home, "openlineage", *command]) == 2, command
        assert "OPENLINEAGE_DISABLED" in capsys.readouterr().err
    assert [p.run_id for p in outbox.pending()] == [final["run_id"]]    # still there to resend
    assert outbox.counters().get("resent") is None and server.received == [] and not out.exists()
    assert main(["--home", home, "openlineage", "status"]) == 0
    assert "publishing   off (OPENLINEAGE_DISABLED=true)" in capsys.readouterr().out

    monkeypatch.delenv("OPENLINEAGE_DISABLED")
    assert main(["--home", home, "openlineage", "resend"]) == 0
    assert [e["eventType"] for _, e in server.received] == ["START"] and outbox.pending() == []


def test_a_config_file_is_read_as_the_client_reads_it(clean_env, monkeypatch):
    """An unreadable or broken file is no configuration (the client logs it and goes on)."""
    conf = Path(clean_env / "ol.yml")
    conf.write_text("transport: [unclosed\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(conf))
    settings = load_settings(home=str(clean_env / "lake"))
    assert not settings.openlineage_configured
    assert make_client(settings).transport.kind == "file"
