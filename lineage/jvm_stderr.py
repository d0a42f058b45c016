"""The JVM's standard error, with the one line Spark makes every JVM print taken out.

Spark's launcher starts every driver JVM with ``--add-modules=jdk.incubator.vector`` (hard-coded
in ``org.apache.spark.launcher.JavaModuleOptions``, for netlib's vectorised BLAS), and the JVM
answers with ``WARNING: Using incubator modules: jdk.incubator.vector`` on its stderr before any
logging is configured - no JVM flag or log level silences it. A user of ``tracelake demo`` or of
a CLI command sees that line first, and it is not about their pipeline.

So the driver JVM is started with its stderr on a pipe: a daemon thread copies every line to the
process's real stderr, except that one. Only the exact line is dropped; everything else the JVM
(or the Python workers it starts) writes - log4j warnings, errors, stack traces - passes through
unchanged and in order.
"""

from __future__ import annotations

import atexit
import os
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DROPPED_LINES", "jvm_stderr_filtered"]

DROPPED_LINES = (b"WARNING: Using incubator modules: jdk.incubator.vector",)


class _Forwarder:
    """Copies lines from the pipe to the real stderr, minus DROPPED_LINES; drained once more at exit.

    The thread is a daemon (it must never keep a finished process alive), so what the JVM wrote
    just before this process exits - often the last error - would die with it: an exit handler
    forwards whatever is still in the pipe. Reads happen under a lock and only after ``select``
    says data is there, so the thread never blocks while holding it.
    """

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.pending = b""
        self.closed = False
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.closed:
            ready, _, _ = select.select([self.read_fd], [], [], 0.5)
            if ready:
                with self.lock:
                    self._read_once()

    def drain(self) -> None:
        """Forward everything the pipe holds now (an exit handler: the thread may be about to die)."""
        with self.lock:
            while not self.closed and select.select([self.read_fd], [], [], 0)[0]:
                self._read_once()
            if self.pending and self.pending.strip() not in DROPPED_LINES:
                _write_all(self.write_fd, self.pending)
            self.pending = b""

    def _read_once(self) -> None:
        if self.closed:
            return
        try:
            chunk = os.read(self.read_fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:   # every writer is gone (the JVM ended)
            if self.pending and self.pending.strip() not in DROPPED_LINES:
                _write_all(self.write_fd, self.pending)
            self.pending = b""
            self.closed = True
            os.close(self.read_fd)
            return
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()
        kept = [line for line in lines if line.strip() not in DROPPED_LINES]
        if kept:
            _write_all(self.write_fd, b"\n".join(kept) + b"\n")


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass  # the real stderr is gone (closed terminal): nothing left to show the line to


@contextmanager
def jvm_stderr_filtered() -> Iterator[None]:
    """Processes started inside this block inherit the filtered stderr; this process gets its own back after.

    File descriptor 2 is swapped for a pipe only for the duration of the block (the JVM's start),
    so Python's own stderr is untouched afterwards; the child keeps the pipe for its lifetime.
    """
    real = os.dup(2)      # kept open for the forwarding thread as long as the JVM may write
    read_fd, write_fd = os.pipe()
    forwarder = _Forwarder(read_fd, real)
    threading.Thread(target=forwarder.run, name="tracelake-jvm-stderr", daemon=True).start()
    atexit.register(forwarder.drain)   # before Spark registers its own: runs after them (LIFO)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        os.dup2(real, 2)
