"""Taking events from other producers: the HTTP endpoint and the file/folder import.

``tracelake openlineage serve`` is an OpenLineage HTTP backend for the embedded setup (stdlib
``http.server``, one process, bound to 127.0.0.1 unless told otherwise): point any producer's
HTTP transport at it - the Spark listener's ``spark.openlineage.transport.url`` - and its runs
join the audit graph. It speaks the API producers expect:

- ``POST /api/v1/lineage`` (one event; ``201 Created``, empty body, as Marquez answers) and
  ``POST /api/v1/lineage/batch`` (a JSON array; ``200``), gzip bodies accepted;
- ``400`` with a one-line reason for what is not an OpenLineage event (nothing is stored);
- ``GET /api/v1/lineage/status`` for a health check and counts.

An event is stored (``received``) before it is answered, so a ``201`` survives a crash, and a
client's retry is stored once. A background worker then turns every run that has ended into
external run records (``external``) - after the answer, so a producer never waits on Delta log
reads. ``import FILE|DIR`` (JSON lines, one event per ``.json`` file, or JSON arrays - what the
listener's ``file`` transport writes) goes through the same store and the same recording.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracelake.lineage.openlineage.external import build_external_records
from tracelake.lineage.openlineage.received import InvalidEvent, ReceivedStore, validate_event
from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
from tracelake.lineage.record.redact import scrub_text

if TYPE_CHECKING:
    from tracelake.lineage.lakehouse import Lakehouse

__all__ = ["Ingestor", "Recorded", "import_path", "make_server", "read_event_files", "serve"]

log = logging.getLogger("tracelake.openlineage")
MAX_BODY = 64 * 1024 * 1024


@dataclass
class Recorded:
    """What one pass of recording did, per OpenLineage run."""

    recorded: list[dict[str, Any]] = field(default_factory=list)   # one per external run record
    ignored: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class Ingestor:
    """Stores received events and records the runs that ended (shared by serve and import)."""

    def __init__(self, lake: Lakehouse):
        self.lake = lake
        self.store = ReceivedStore(lake.settings.openlineage_dir)
        self._lock = threading.Lock()
        self._claimed: set[tuple[str, int]] | None = None
        self._known: set[str] = set()

    def receive(self, events: list[Any], source: str) -> tuple[int, int]:
        """Validate all, then store all (one invalid event refuses the whole request)."""
        for event in events:
            validate_event(event)
        stored = self.store.add(events, source)
        return stored.stored, stored.duplicates

    def _load_claims(self) -> set[tuple[str, int]]:
        """Table versions recorded runs already wrote (an external commit is claimed once)."""
        if self._claimed is None:
            frame = self.lake.store.component_runs(include_open=False)
            claimed: set[tuple[str, int]] = set()
            layout = self.lake.layout
            for table, path, version in zip(frame.get("output_table", []), frame.get("output_path", []),
                                            frame.get("output_version", []), strict=False):
                if version is not None and version == version:
                    where = layout.resolve(table, path)
                    if where:
                        claimed.add((where, int(version)))
            self._known = set(frame["run_id"]) if len(frame) else set()
            self._claimed = claimed
        return self._claimed

    def record_ready(self) -> Recorded:
        """Turn every received run that has ended into external run records (once each)."""
        out = Recorded()
        with self._lock:
            ready = self.store.unprocessed()
            if not ready:
                return out
            claimed = self._load_claims()
            for ol_run_id in ready:
                try:
                    events = self.store.events_of(ol_run_id)
                    parents = {((e.get("run") or {}).get("facets") or {}).get("parent", {}).get("run", {}).get("runId")
                               for e in events} - {None, ol_run_id}
                    app_events = [e for p in parents for e in self.store.events_of(p)]
                    run = build_external_records(self.lake, events, app_events, claimed)
                    new = [r for r in run.records if r["run_id"] not in self._known]
                    if new:
                        self.lake.journal.append_many(COMPONENT_RUNS, [(r["run_id"], r) for r in new])
                        self._known.update(r["run_id"] for r in new)
                    self.store.mark(ol_run_id, "recorded" if run.records else "ignored",
                                    [r["run_id"] for r in run.records], run.detail)
                    for r in run.records:
                        out.recorded.append({"run_id": r["run_id"], "component": r["component"], "status": r["status"],
                                             "output": f"{r['output_table']}@v{r['output_version']}"
                                             if r["output_version"] is not None else r["output_table"],
                                             "verified": r["tags"]["tracelake.external.verified"],
                                             "openlineage_run_id": ol_run_id})
                    if not run.records:
                        out.ignored.append({"openlineage_run_id": ol_run_id, "detail": run.detail})
                    log.info("OpenLineage run %s: %s", ol_run_id, run.detail)
                except Exception as exc:  # recorded as an error (retried later), reported, never swallowed
                    detail = f"{type(exc).__name__}: {scrub_text(str(exc))}"   # events may carry credentials
                    log.error("OpenLineage run %s could not be recorded: %s", ol_run_id, detail)
                    self.store.mark(ol_run_id, "error", [], detail)
                    out.errors.append({"openlineage_run_id": ol_run_id, "error": f"{type(exc).__name__}: {exc}"})
        return out


# -- import --------------------------------------------------------------------------------------
def read_event_files(path: str | Path) -> list[Any]:
    """Events from a file (JSON lines, one JSON object, or a JSON array) or every ``.json``/
    ``.jsonl``/``.ndjson`` file under a folder, in name order (Delta logs excepted). An invalid
    event fails the import with its file and line, before anything is stored."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".ndjson")
                   and "_delta_log" not in p.parts) if root.is_dir() else [root]
    events: list[Any] = []
    for file in files:
        text = file.read_text()
        if not text.strip():
            continue
        try:
            value = json.loads(text)
            found = [(1, e) for e in (value if isinstance(value, list) else [value])]
        except json.JSONDecodeError:
            found = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        found.append((n, json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise InvalidEvent(f"{file}:{n}: not JSON ({exc.msg})") from None
        for n, event in found:
            try:
                validate_event(event)
            except InvalidEvent as exc:
                raise InvalidEvent(f"{file}:{n}: {exc}") from None
            events.append(event)
    return events


def import_path(lake: Lakehouse, path: str | Path) -> tuple[int, int, Recorded]:
    """(events stored, duplicates, what was recorded) for a file or folder of events."""
    ingestor = Ingestor(lake)
    events = read_event_files(path)
    stored, duplicates = ingestor.receive(events, source=f"import:{Path(path).resolve()}")
    return stored, duplicates, ingestor.record_ready()


# -- the HTTP endpoint -----------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, code: int, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/api/v1/lineage/status", "/status", ""):
            self._reply(200, {"ok": True, **self.server.ingestor.store.summary()})
        else:
            self._reply(404, {"error": f"no {self.path}; POST events to /api/v1/lineage"})

    def do_POST(self) -> None:
        route = self.path.split("?")[0].rstrip("/")
        if route not in ("/api/v1/lineage", "/api/v1/lineage/batch", "/lineage", "/lineage/batch"):
            self._reply(404, {"error": f"no {self.path}; POST events to /api/v1/lineage"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self._reply(400 if length <= 0 else 413, {"error": "a request needs a JSON body (at most 64 MiB)"})
            return
        raw = self.rfile.read(length)
        try:
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                raw = gzip.decompress(raw)
            body = json.loads(raw)
        except (OSError, ValueError) as exc:
            self._reply(400, {"error": f"the body is not JSON: {str(exc)[:200]}"})
            return
        batch = route.endswith("/batch")
        events = body if batch and isinstance(body, list) else [body]
        try:
            stored, duplicates = self.server.ingestor.receive(events, source=f"http:{self.client_address[0]}")
        except InvalidEvent as exc:
            self._reply(400, {"error": str(exc)})
            return
        self._reply(200 if batch else 201, {"stored": stored, "duplicates": duplicates} if batch else None)
        self.server.wake.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    ingestor: Ingestor
    wake: threading.Event


def make_server(lake: Lakehouse, host: str = "127.0.0.1", port: int = 0) -> tuple[_Server, threading.Thread]:
    """A bound server (not yet serving) and its recording worker (started). Port 0 picks a free port."""
    server = _Server((host, port), _Handler)
    server.ingestor = Ingestor(lake)
    server.wake = threading.Event()
    server.wake.set()  # record what an earlier run of the server left unrecorded

    def work() -> None:
        while True:
            server.wake.wait()
            server.wake.clear()
            if getattr(server, "stopping", False):
                return
            server.ingestor.record_ready()

    worker = threading.Thread(target=work, name="tracelake-openlineage-recorder", daemon=True)
    worker.start()
    return server, worker


def serve(lake: Lakehouse, host: str, port: int, ready: Any = None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); then record what is waiting and stop."""
    server, worker = make_server(lake, host, port)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.stopping = True  # type: ignore[attr-defined]
        server.wake.set()
        worker.join(timeout=30)
        server.ingestor.record_ready()
