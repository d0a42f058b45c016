"""The driver JVM's stderr reaches the user unchanged except for Spark's incubator-module line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

_LINE = "WARNING: Using incubator modules: jdk.incubator.vector"


def _parent(child_shell: str, then: str = "") -> subprocess.CompletedProcess:
    """A process that starts ``child_shell`` (standing in for the JVM) inside the filter, then exits."""
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        from tracelake.lineage.jvm_stderr import jvm_stderr_filtered
        with jvm_stderr_filtered():
            child = subprocess.Popen(["sh", "-c", {child_shell!r}])
        print("parent's own stderr", file=sys.stderr, flush=True)
        {then}
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_only_the_incubator_line_is_dropped_and_order_is_kept():
    proc = _parent(f"echo '{_LINE}' >&2; echo 'log4j WARN x' >&2; echo 'Exception in thread main' >&2; printf 'no newline' >&2",
                   then="child.wait(); time.sleep(0.3)")
    assert proc.returncode == 0
    assert _LINE not in proc.stderr
    assert "log4j WARN x\nException in thread main\nno newline" in proc.stderr
    assert "parent's own stderr" in proc.stderr   # this process's stderr is its own again after the block


def test_the_exit_drain_forwards_what_the_pipe_still_holds():
    # The forwarding thread is a daemon and dies with the process; what the JVM wrote last (often
    # the error that matters) is in the pipe then, and the exit handler must forward it.
    import os

    from tracelake.lineage.jvm_stderr import _Forwarder

    jvm_r, jvm_w = os.pipe()
    out_r, out_w = os.pipe()
    forwarder = _Forwarder(jvm_r, out_w)   # no thread: only the drain can move the bytes
    os.write(jvm_w, f"{_LINE}\nlast error line\npartial".encode())
    forwarder.drain()
    os.close(out_w)
    assert os.read(out_r, 4096) == b"last error line\npartial"
    os.close(jvm_w)
    forwarder.drain()   # the JVM has gone: the pipe reads EOF and is closed, once
    assert forwarder.closed
    os.close(out_r)
