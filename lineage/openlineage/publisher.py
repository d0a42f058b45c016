"""The publisher: every component run becomes OpenLineage events, off the materialisation's path.

It is a :class:`~tracelake.lineage.record.listeners.RunListener` that ``open_lakehouse`` attaches
when ``TRACELAKE_OPENLINEAGE`` is on (the default). On the run's thread it does one thing: put the
journaled record on a bounded in-memory queue (a few microseconds). A background thread builds
the events (``events``) and sends them through the client's configured transport (``transport``):

- **bounded queue** (``TRACELAKE_OPENLINEAGE_QUEUE``): when it is full the run is not held up -
  the event goes straight to the outbox;
- **retries**: a failed send is retried with backoff (``TRACELAKE_OPENLINEAGE_RETRIES``, on top
  of the transport's own), then the event goes to the **outbox** with the error;
- **back-off** (a circuit breaker): after a failure, events go to the outbox without trying for
  ``COOLDOWN_SECONDS``, so a backend that hangs costs one timeout, not one per event, and the
  queue never fills behind it. The failure is noted in the outbox, so every process publishing
  from this lakehouse backs off too - above all each step process of Dagster's multiprocess
  executor, which would otherwise pay the failure again;
- **process exit**: a watcher closes the publisher when the main thread ends (interpreter exit,
  and the end of a multiprocessing child - which is how Dagster's multiprocess executor runs
  steps). A backend that answers gets up to ``DRAIN_SECONDS`` to take the queue; in back-off, or
  once one send has waited ``STALL_SECONDS`` for an answer, what is left goes to the outbox at
  once, including the event stuck in that call (waiting ``HUNG_SECONDS`` or more counts as a
  failure). A process killed outright (SIGKILL) loses only its queue: the audit records are
  durable, and ``tracelake openlineage export --since`` replays them.

``tracelake openlineage resend`` sends the outbox again; ``status`` shows it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from tracelake.lineage.openlineage.outbox import Entry, Outbox, event_type_of
from tracelake.lineage.record.redact import scrub_text
from tracelake.lineage.settings import Settings

if TYPE_CHECKING:
    from tracelake.lineage.openlineage.events import EventBuilder
    from tracelake.lineage.record.audit_store import AuditStore

__all__ = ["COOLDOWN_SECONDS", "DRAIN_SECONDS", "HUNG_SECONDS", "STALL_SECONDS", "Publisher", "publisher_for"]

log = logging.getLogger("tracelake.openlineage")

COOLDOWN_SECONDS = 30.0   # after a failed delivery, send nothing (outbox) for this long - in every process
DRAIN_SECONDS = 3.0       # at process exit, wait at most this long for a backend that answers to take the queue
STALL_SECONDS = 0.25      # ... but not for one answer longer than this: a healthy backend answers in milliseconds
HUNG_SECONDS = 1.0        # an answer this overdue at exit counts as a failure: later processes back off too
_STOP = ("stop", None)


def publisher_for(settings: Settings, store: AuditStore) -> list[Publisher]:
    """The listeners ``open_lakehouse`` attaches: one publisher, or none when publishing is off."""
    return [Publisher(settings, store)] if settings.openlineage else []


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
        self._stopping = threading.Event()    # ends a retry wait (process exit)
        self._giving_up = threading.Event()   # close() took over: nothing more goes to the backend
        self._inflight: tuple[str, dict[str, Any]] | None = None
        self._sending_since: float | None = None      # monotonic start of the send waiting on the backend
        self._abandoned: tuple[str, Any] | None = None  # the in-flight event close() put in the outbox itself
        self._checks: dict[str, list[dict[str, Any]]] = {}
        self._lost_checks: set[str] = set()
        self._circuit_until = 0.0
        self._backoff_loaded = False
        self._last_error = ""
        self._client: Any = None
        self._builder: EventBuilder | None = None
        self._unsaved: dict[str, int] = {}
        self.stats = {"enqueued": 0, "delivered": 0, "outboxed": 0, "disabled": 0}

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
        checks = self._checks.pop(run_id, []) if kind == "end" else []
        if kind == "end" and run_id in self._lost_checks:
            self._lost_checks.discard(run_id)
            self._to_outbox(item, "not sent: its check results did not fit in the queue; resend rebuilds it whole",
                            attempts=0)
            return
        self._load_backoff()
        if self._giving_up.is_set() or self._in_backoff():
            # Not even built: the outbox keeps a reference, and resend rebuilds the event from the record.
            self._to_outbox(item, self._not_sent_reason(), attempts=0)
            return
        builder = self._event_builder()
        self._deliver(item, builder.start(payload) if kind == "start" else builder.end(payload, checks))

    def _deliver(self, item: tuple[str, Any], event: Any) -> None:
        from tracelake.lineage.openlineage.transport import DeliveryFailed, is_disabled, send

        client = self._ol_client()
        if is_disabled(client):
            # OPENLINEAGE_DISABLED=true reached the client after the settings were read: publishing
            # is off, so the event is neither delivered nor undelivered.
            self.stats["disabled"] += 1
            return
        if self._giving_up.is_set():          # close() took over while this event was being built
            self._to_outbox(item, self._not_sent_reason(), attempts=0)
            return
        error = None
        with self._lock:
            self._sending_since = time.monotonic()
        try:
            send(client, event, retries=self.settings.openlineage_retries, stop=self._stopping.is_set)
        except DeliveryFailed as exc:
            error = scrub_text(str(exc)) or type(exc).__name__
        finally:
            with self._lock:
                self._sending_since = None
                abandoned = self._abandoned is item
        if error is None:
            self.stats["delivered"] += 1
            self._unsaved["delivered"] = self._unsaved.get("delivered", 0) + 1
            return
        self._backend_failed(error)
        if not abandoned:
            log.warning("OpenLineage delivery failed for run %s (%s): %s; kept in the outbox - "
                        "`tracelake openlineage resend` sends it again", item[1]["run_id"], item[0], error)
            self._to_outbox(item, f"delivery failed: {error}", attempts=self.settings.openlineage_retries + 1)

    # -- back-off (the circuit breaker), shared with other processes through the outbox ---------
    def _in_backoff(self) -> bool:
        return time.monotonic() < self._circuit_until

    def _backend_failed(self, error: str) -> None:
        self._last_error = error
        self._circuit_until = time.monotonic() + COOLDOWN_SECONDS
        try:
            self.outbox.backend_failed(error, scrubbed=True)
        except Exception as exc:  # this process still backs off; only the others will not know
            log.warning("OpenLineage: could not note the backend failure in %s: %s", self.outbox.path, exc)

    def _load_backoff(self, *, again: bool = False) -> None:
        """Back off when any process publishing from this lakehouse found the backend failing less
        than ``COOLDOWN_SECONDS`` ago (read once, and again at close)."""
        if self._backoff_loaded and not again:
            return
        self._backoff_loaded = True
        try:
            noted = self.outbox.backend_failure()
        except Exception as exc:  # unreadable note: this process finds out about the backend itself
            log.warning("OpenLineage: could not read %s: %s", self.outbox.path, exc)
            return
        if noted is None:
            return
        error, at = noted
        left = min(COOLDOWN_SECONDS, at + COOLDOWN_SECONDS - time.time())   # min: a clock that went back
        if left > 0 and time.monotonic() + left > self._circuit_until:
            self._circuit_until = time.monotonic() + left
            self._last_error = error

    def _not_sent_reason(self) -> str:
        if self._in_backoff():
            return (f"not sent: the backend failed {COOLDOWN_SECONDS:.0f} s ago or less "
                    f"(last error: {self._last_error})")
        return "not sent: the process exited before delivery (the backend was slow or not answering)"

    def _event_builder(self) -> EventBuilder:
        if self._builder is None:
            from tracelake.lineage.openlineage.context import make_builder

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

    def _to_outbox(self, item: tuple[str, Any], reason: str, *, attempts: int = 1) -> None:
        if item is self._abandoned:
            return   # close() put it there already
        self._outbox_many([item], reason, attempts=attempts)

    def _outbox_many(self, items: list[tuple[str, Any]], reason: str, *, attempts: int = 1) -> None:
        entries = [Entry(payload["run_id"], kind, reason, event_type_of(kind, payload.get("status")),
                         payload.get("openlineage_run_id"), attempts)
                   for kind, payload in items if kind != "checks" and payload is not None]
        # Every reason here is fixed text or errors scrubbed when they were caught (``_deliver``,
        # ``_run``, the noted failure): not scrubbed again, which would cost an exit a third of a second.
        self.outbox.add_many(entries, scrubbed=True)
        self.stats["outboxed"] += len(entries)

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
        """Let a backend that answers take the queue (up to ``timeout`` seconds); when it is backing
        off, or stops answering, move what is left to the outbox at once instead of waiting."""
        if self._closed:
            return
        self._stopping.set()                  # a retry wait ends: the event goes to the outbox, not the exit
        if self._outstanding:
            self._load_backoff(again=True)    # another step process may have found the backend down
        drained = not self._in_backoff() and self._drain(timeout)
        self._giving_up.set()
        self._closed = True
        left = self._take_queue()
        stuck = None if drained else self._abandon_inflight()
        if stuck is not None:
            left.insert(0, stuck[0])
            if stuck[1] >= HUNG_SECONDS and not self._in_backoff():
                self._backend_failed(f"no answer in {stuck[1]:.1f} s (the process exited waiting for it)")
        self._outbox_many(left, self._not_sent_reason(), attempts=0)
        self._save_counts()
        if self._thread is not None:
            self._queue.put(_STOP)
        if left:
            log.warning("OpenLineage: %d event(s) not delivered before exit are in the outbox (%s)",
                        len([i for i in left if i[0] != "checks"]), self.outbox.path)

    def _drain(self, timeout: float) -> bool:
        """Wait for the queue to empty; False at ``timeout``, when delivery fails (back-off), or
        when one send has waited ``STALL_SECONDS`` for the backend."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._outstanding > 0:
                now = time.monotonic()
                stalled = self._sending_since is not None and now - self._sending_since > STALL_SECONDS
                if now >= deadline or stalled or self._in_backoff():
                    return False
                self._idle.wait(min(0.02, deadline - now))
        return True

    def _take_queue(self) -> list[tuple[str, Any]]:
        """Everything still queued, taken from the sender (which then has at most one event)."""
        taken = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                taken.append(item)
        with self._lock:
            self._outstanding -= len(taken)
            self._idle.notify_all()
        return taken

    def _abandon_inflight(self) -> tuple[tuple[str, Any], float] | None:
        """The sender's event once close() has taken over: taken into the outbox here (with how
        long it has waited) when it waits on the backend; otherwise it is local work that ends in
        milliseconds - waited for, up to ``STALL_SECONDS`` - after which the sender sees
        ``_giving_up`` and puts it in the outbox itself."""
        deadline = time.monotonic() + STALL_SECONDS
        with self._lock:
            while self._outstanding > 0:
                now = time.monotonic()
                if self._inflight is not None and (self._sending_since is not None or now >= deadline):
                    self._abandoned = self._inflight
                    return self._inflight, now - (self._sending_since or now)
                if now >= deadline:
                    return None
                self._idle.wait(min(0.02, deadline - now))
        return None


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
