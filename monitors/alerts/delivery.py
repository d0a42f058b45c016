"""One delivery attempt under a hard deadline, and channels delivered in parallel.

``urllib``'s and ``smtplib``'s ``timeout`` bounds each socket operation, not the whole exchange:
a server that answers one byte per second keeps a caller waiting for ever. Here every attempt
gets a :class:`Guard`: a total deadline (connect + send + read). Channels register each socket
they open with it; when the deadline passes the guard shuts those sockets down, which wakes any
thread blocked on them, and refuses new ones. The attempt itself runs in a daemon thread joined
with a hard timeout, so even a call the guard cannot interrupt (a DNS lookup, a third-party
channel that ignores the guard) never holds up the monitoring job - it is abandoned and recorded
as a missed deadline.

Nothing here raises out of a delivery: every exception a channel raises becomes an
:class:`Attempt` with a one-line, secret-scrubbed reason.
"""

from __future__ import annotations

import inspect
import socket
import threading
import time
import urllib.error
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tracelake.lineage.record.redact import scrub_text

__all__ = [
    "GRACE_S",
    "Attempt",
    "ChannelConfigError",
    "ChannelRefused",
    "DeliveryTimeout",
    "Guard",
    "attempt",
    "run_parallel",
]

GRACE_S = 1.0          # how long a cancelled attempt may take to notice before it is abandoned
_MAX_ERROR = 500


class ChannelConfigError(ValueError):
    """A channel that cannot work as configured (a ``file://`` webhook, SMTP without recipients)."""


class ChannelRefused(RuntimeError):
    """The channel answered, and the answer was not a success (an HTTP error status...)."""


class DeliveryTimeout(TimeoutError):
    """The attempt's total deadline passed."""


def _kill(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Guard:
    """A total deadline for one delivery attempt, enforced at the socket level.

    ``register(sock)`` keeps a duplicate of the socket's descriptor: ``shutdown`` acts on the
    connection, not the descriptor, so shutting the duplicate down interrupts a ``recv`` blocked
    on the original - also after the original was wrapped in TLS (which detaches it).
    """

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.deadline = time.monotonic() + self.seconds
        self.cancelled = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Guard:
        self._timer = threading.Timer(max(0.0, self.remaining()), self.cancel)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def op_timeout(self, per_operation: float | None = None) -> float:
        """A socket timeout for each operation: the channel's own, but never much past the deadline
        (where the guard cuts it first) and never 0 (which would mean non-blocking)."""
        left = self.remaining() + 0.25
        if per_operation is not None:
            left = min(left, per_operation)
        return max(left, 0.001)

    @property
    def expired(self) -> bool:
        return self.cancelled or self.remaining() <= 0

    def check(self) -> None:
        if self.expired:
            raise DeliveryTimeout(f"deadline of {self.seconds:g} s passed")

    def register(self, sock: socket.socket) -> None:
        try:
            dup = sock.dup()
        except (OSError, NotImplementedError):
            return
        with self._lock:
            if not self.cancelled:
                self._socks.append(dup)
                return
        _kill(dup)
        _kill(sock)
        raise DeliveryTimeout(f"deadline of {self.seconds:g} s passed")

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            socks, self._socks = self._socks, []
        for s in socks:
            _kill(s)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


@dataclass
class Attempt:
    delivered: bool
    kind: str                 # delivered | deadline | config | error
    error: str | None
    elapsed_s: float


def _accepts_guard(send: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(send).parameters
    except (TypeError, ValueError):
        return False
    return "guard" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _unwrap(exc: BaseException) -> BaseException:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError) \
            and isinstance(exc.reason, BaseException):
        return exc.reason
    return exc


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (DeliveryTimeout, socket.timeout, TimeoutError))


def describe_error(exc: BaseException, guard: Guard | None, secrets: Iterable[str] = ()) -> tuple[str, str]:
    """(kind, one-line reason) of a failed attempt, with secrets removed."""
    inner = _unwrap(exc)
    text = f"{type(inner).__name__}: {inner}".strip()
    if isinstance(inner, ChannelConfigError):
        kind, text = "config", f"configuration: {inner}"
    elif isinstance(inner, ChannelRefused):
        kind, text = "error", str(inner)
    elif guard is not None and guard.cancelled:
        kind, text = "deadline", (f"deadline exceeded: no complete answer within {guard.seconds:g} s "
                                  f"(connect+send+read; {text})")
    elif _is_timeout(inner):
        kind, text = "deadline", f"timed out: the channel stopped answering ({text})"
    else:
        kind = "error"
    cleaned = scrub_text(" ".join(text.split()), [s for s in secrets if s]) or ""
    return kind, cleaned[:_MAX_ERROR]


def attempt(channel: Any, subject: str, body: str, payload: Mapping[str, Any], timeout_s: float,
            secrets: Iterable[str] = ()) -> Attempt:
    """Try one delivery, within ``timeout_s`` in total; never raises."""
    secrets = list(secrets)
    start = time.monotonic()
    guard = Guard(timeout_s)
    box: dict[str, Any] = {}
    send = getattr(channel, "send", None)

    def run() -> None:
        try:
            with guard:
                if send is None:
                    raise ChannelConfigError(f"{type(channel).__name__} has no send()")
                if _accepts_guard(send):
                    send(subject, body, dict(payload), guard=guard)
                else:
                    send(subject, body, dict(payload))
            box["ok"] = True
        except BaseException as exc:
            box["exc"] = exc

    worker = threading.Thread(target=run, daemon=True, name=f"tracelake-alert-{getattr(channel, 'name', '?')}")
    worker.start()
    worker.join(timeout_s + GRACE_S)
    if worker.is_alive():
        guard.cancel()
        worker.join(GRACE_S)
    elapsed = time.monotonic() - start
    if box.get("ok"):
        return Attempt(True, "delivered", None, elapsed)
    if worker.is_alive():
        # Could not be interrupted (a DNS lookup, a channel ignoring its guard): abandoned. It can
        # open no new socket - the guard refuses them - so it cannot deliver behind our back.
        return Attempt(False, "deadline", f"deadline exceeded: no complete answer within {timeout_s:g} s "
                       "(connect+send+read); the attempt was abandoned", elapsed)
    kind, text = describe_error(box.get("exc") or RuntimeError("no outcome"), guard, secrets)
    return Attempt(False, kind, text, elapsed)


def run_parallel(tasks: Mapping[str, Callable[[], None]], *, max_workers: int, bound_s: float) -> dict[str, bool]:
    """Run each task in its own daemon thread, at most ``max_workers`` at a time, waiting at most
    ``bound_s`` in total; returns which tasks finished. A task still running is left behind (its
    thread is a daemon: it never keeps the process alive)."""
    slots = threading.BoundedSemaphore(max(1, max_workers))
    done: dict[str, threading.Event] = {name: threading.Event() for name in tasks}

    def wrap(name: str, task: Callable[[], None]) -> None:
        with slots:
            try:
                task()
            finally:
                done[name].set()

    for name, task in tasks.items():
        threading.Thread(target=wrap, args=(name, task), daemon=True, name=f"tracelake-deliver-{name}").start()
    end = time.monotonic() + bound_s
    for event in done.values():
        event.wait(max(0.0, end - time.monotonic()))
    return {name: event.is_set() for name, event in done.items()}
