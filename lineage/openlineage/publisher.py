"""The publisher: every component run becomes OpenLineage events, off the materialisation's path.

It is a :class:`~tracelake.lineage.record.listeners.RunListener` that ``open_lakehouse`` attaches
when ``TRACELAKE_OPENLINEAGE`` is on (the default). On the run's thread it does one thing: put the
journaled record on a bounded in-memory queue (a few microseconds). A background thread builds
the events (``events``) and sends them through the client's configured transport (``transport``):

- **bounded queue** (``TRACELAKE_OPENLINEAGE_QUEUE``): when it is full the run is not held up -
  the event goes straight to the outbox;
- **retries**: a failed send is retried with backoff (``TRACELAKE_OPENLINEAGE_RETRIES``, on top
  of the transport's own), then the event goes to the **outbox** with the error;
- **circuit breaker**: after a failure, events go to the outbox without trying for
  ``COOLDOWN_SECONDS``, so a backend that hangs costs one timeout, not one per event, and the
  queue never fills behind it;
- **process exit**: a watcher waits up to ``DRAIN_SECONDS`` for the queue to empty when the
  main thread ends (interpreter exit, and the end of a multiprocessing child - which is how
  Dagster's multiprocess executor runs steps); whatever is left, including an event stuck in a
  hanging HTTP call, goes to the outbox. A process killed outright (SIGKILL) loses only its queue:
  the audit records are durable, and ``tracelake openlineage export --since`` replays them.

``tracelake openlineage resend`` sends the outbox again; ``status`` shows it.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
import time
import weakref
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tracelake.lineage.openlineage.outbox import Outbox
from tracelake.lineage.record.redact import scrub_text
from tracelake.lineage.settings import Settings, repo_root

if TYPE_CHECKING:
    from tracelake.lineage.openlineage.events import EventBuilder
    from tracelake.lineage.record.audit_store import AuditStore

__all__ = ["COOLDOWN_SECONDS", "DRAIN_SECONDS", "Publisher", "publisher_for", "repository_url", "schema_lookup"]

log = logging.getLogger("tracelake.openlineage")

COOLDOWN_SECONDS = 30.0   # after a failed delivery, send nothing (outbox) for this long
DRAIN_SECONDS = 3.0       # at process exit, wait at most this long for the queue to empty
_STOP = ("stop", None)


def publisher_for(settings: Settings, store: AuditStore) -> list[Publisher]:
    """The listeners ``open_lakehouse`` attaches: one publisher, or none when publishing is off."""
    return [Publisher(settings, store)] if settings.openlineage else []


@lru_cache(maxsize=8)
def repository_url(path: str) -> str | None:
    """The git remote (``origin``) of the repository at ``path``, else ``file://`` of its root."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() or None if out.returncode == 0 else None

    remote = git("remote", "get-url", "origin")
    if remote:
        return remote
    top = git("rev-parse", "--show-toplevel")
    return f"file://{top}" if top else None


def schema_lookup(maxsize: int = 4096):
    """``(path, version) -> Delta schema JSON`` from the table's log, cached. A table version that
    cannot be read any more (vacuumed history) gives None: the event goes out without that one
    schema facet, and the problem is logged."""
    from tracelake.lineage.record import delta_meta

    @lru_cache(maxsize=maxsize)
    def schema_of(path: str, version: int) -> str | None:
        try:
            return delta_meta.schema_at(path, version)
        except Exception as exc:  # reported; the event is still sent without the facet
            log.warning("no schema for %s@v%s in its OpenLineage event: %s", path, version, exc)
            return None

    return schema_of


def make_builder(settings: Settings, store: AuditStore, schema_of=None) -> EventBuilder:
    from tracelake.lineage.openlineage.events import EventBuilder, EventContext

    return EventBuilder(EventContext(layout=store.layout, namespace=settings.openlineage_namespace,
                                     repo_url=repository_url(str(repo_root())), schema_of=schema_of or schema_lookup()))


class Publisher:
    """RunListener that enqueues; a daemon thread builds and sends (see the module docstring)."""

    def __init__(self, settings: Settings, store: AuditStore):
        self.settings = settings
        self.store = store
        self.outbox = Outbox(settings.openlineage_dir)
        self._queue: queue.Queue = queue.Queue(maxsize=settings.openlineage_queue)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._outstanding = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stopping = threading.Event()
        self._inflight: tuple[str, dict[str, Any]] | None = None
        self._checks: dict[str, list[dict[str, Any]]] = {}
        self._lost_checks: set[str] = set()
        self._circuit_until = 0.0
        self._last_error = ""
        self._client: Any = None
        self._builder: EventBuilder | None = None
        self._unsaved: dict[str, int] = {}
        self.stats = {"enqueued": 0, "delivered": 0, "outboxed": 0}

    # -- the listener: enqueue only -------------------------------------------------------------
    def run_started(self, record: dict[str, Any]) -> None:
        self._put(("start", dict(record)))

    def checks_recorded(self, records: list[dict[str, Any]]) -> None:
        if records and not self._put(("checks", list(records))):
            self._lost_checks.add(records[0]["run_id"])

    def run_finished(self, record: dict[str, Any]) -> None:
        self._put(("end", dict(record)))

    def _put(self, item: tuple[str, Any]) -> bool:
        if self._closed:
            self._to_outbox(item, "not sent: the publisher had shut down (process exiting)", attempts=0)
            return False
        if self._thread is None:
            self._start()
        with self._lock:
            self._outstanding += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self._outstanding -= 1
            self._to_outbox(item, f"not sent: the publishing queue was full ({self.settings.openlineage_queue} "
                                  "events waiting)", attempts=0)
            return False
        self.stats["enqueued"] += 1
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="tracelake-openlineage", daemon=True)
            self._thread.start()
        _watch(self)

    # -- the background sender ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._inflight = item
                self._handle(item)
            except Exception as exc:  # never lose the event: logged, and kept in the outbox
                # an error may quote the backend's URL or headers: scrubbed before it is logged or kept
                log.error("OpenLineage event of run %s not published: %s: %s", _run_id(item), type(exc).__name__,
                          scrub_text(str(exc)))
                self._to_outbox(item, f"not sent: building or sending failed: {type(exc).__name__}: "
                                      f"{scrub_text(str(exc))}")
            finally:
                self._inflight = None
                if self._queue.empty():
                    self._save_counts()
                with self._lock:
                    self._outstanding -= 1
                    self._idle.notify_all()

    def _handle(self, item: tuple[str, Any]) -> None:
        kind, payload = item
        if kind == "checks":
            for row in payload:
                self._checks.setdefault(row["run_id"], []).append(row)
            return
        run_id = payload["run_id"]
        if kind == "end" and run_id in self._lost_checks:
            self._lost_checks.discard(run_id)
            self._checks.pop(run_id, None)
            self._to_outbox(item, "not sent: its check results did not fit in the queue; resend rebuilds it whole",
                            attempts=0)
            return
        builder = self._event_builder()
        event = builder.start(payload) if kind == "start" else builder.end(payload, self._checks.pop(run_id, []))
        if time.monotonic() < self._circuit_until:
            self._to_outbox(item, f"not sent: the backend failed {COOLDOWN_SECONDS:.0f} s ago or less "
                                  f"(last error: {self._last_error})", attempts=0, event=event)
            return
        from tracelake.lineage.openlineage.transport import DeliveryFailed, send

        try:
            send(self._ol_client(), event, retries=self.settings.openlineage_retries, stop=self._stopping.is_set)
        except DeliveryFailed as exc:
            self._last_error = scrub_text(str(exc))
            self._circuit_until = time.monotonic() + COOLDOWN_SECONDS
            log.warning("OpenLineage delivery failed for run %s (%s): %s; kept in the outbox - "
                        "`tracelake openlineage resend` sends it again", run_id, kind, self._last_error)
            self._to_outbox(item, f"delivery failed: {self._last_error}", attempts=self.settings.openlineage_retries + 1,
                            event=event)
            return
        self.stats["delivered"] += 1
        self._unsaved["delivered"] = self._unsaved.get("delivered", 0) + 1

    def _event_builder(self) -> EventBuilder:
        if self._builder is None:
            self._builder = make_builder(self.settings, self.store)
        return self._builder

    def use_client(self, client: Any) -> None:
        """Send through ``client`` instead of the one the configuration gives (benchmarks comparing
        transports in one process, where the environment can only say one thing)."""
        self._client = client

    def _ol_client(self) -> Any:
        if self._client is None:
            from tracelake.lineage.openlineage.transport import make_client

            self._client = make_client(self.settings)
        return self._client

    def _save_counts(self) -> None:
        pending, self._unsaved = self._unsaved, {}
        for name, n in pending.items():
            self.outbox.count(name, n)

    def _to_outbox(self, item: tuple[str, Any], reason: str, *, attempts: int = 1, event: Any = None) -> None:
        kind, payload = item
        if kind == "checks" or payload is None:
            return
        event_type = None
        if event is not None:
            event_type = getattr(event.eventType, "value", None)
        elif kind == "start":
            event_type = "START"
        self.outbox.add(payload["run_id"], kind, reason, event_type=event_type,
                        openlineage_run_id=payload.get("openlineage_run_id"), attempts=attempts)
        self.stats["outboxed"] += 1

    # -- waiting and shutting down --------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event was delivered or put in the outbox; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._outstanding > 0:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = DRAIN_SECONDS) -> None:
        """Drain for up to ``timeout`` seconds, then move whatever is left to the outbox."""
        if self._closed:
            return
        drained = self.flush(timeout)
        self._stopping.set()
        self._closed = True
        left = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                left.append(item)
        inflight = self._inflight
        if not drained and inflight is not None:
            left.insert(0, inflight)
        for item in left:
            self._to_outbox(item, "not sent: the process exited before delivery", attempts=0)
        self._save_counts()
        if self._thread is not None:
            self._queue.put(_STOP)
        if left:
            log.warning("OpenLineage: %d event(s) not delivered before exit are in the outbox (%s)",
                        len([i for i in left if i[0] != "checks"]), self.outbox.path)


def _run_id(item: tuple[str, Any]) -> str | None:
    kind, payload = item
    if kind == "checks":
        return payload[0]["run_id"] if payload else None
    return payload.get("run_id") if payload else None


# -- one watcher per process: drain every publisher when the main thread ends -------------------
_publishers: weakref.WeakSet[Publisher] = weakref.WeakSet()
_watcher: threading.Thread | None = None
_watcher_lock = threading.Lock()


def _watch(publisher: Publisher) -> None:
    global _watcher
    with _watcher_lock:
        _publishers.add(publisher)
        if _watcher is None:
            # Not a daemon: interpreter shutdown (and multiprocessing's child bootstrap) joins it,
            # which is what gives the queues their last DRAIN_SECONDS.
            _watcher = threading.Thread(target=_drain_at_exit, name="tracelake-openlineage-exit", daemon=False)
            _watcher.start()


def _drain_at_exit() -> None:
    threading.main_thread().join()
    deadline = time.monotonic() + DRAIN_SECONDS
    for publisher in list(_publishers):
        publisher.close(timeout=max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    global _watcher, _publishers
    _watcher = None
    _publishers = weakref.WeakSet()


os.register_at_fork(after_in_child=_after_fork_in_child)
