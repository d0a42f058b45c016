"""The fail points themselves: inert unless named, and each action does what the crash tests rely on."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tracelake.lineage.record.failpoints import failpoint

pytestmark = pytest.mark.crash

_CHILD = """
import sys
from tracelake.lineage.record.failpoints import failpoint
failpoint("before_commit", run_id="r1")
print("went on", flush=True)
"""


def _child(tmp_path, action):
    marker = tmp_path / "marker"
    env = {**os.environ, "TRACELAKE_FAILPOINTS": f"after_open=raise,before_commit={action}",
           "TRACELAKE_FAILPOINT_MARKER": str(marker)}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD], env=env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    return proc, marker


def test_a_fail_point_does_nothing_unless_named(monkeypatch):
    monkeypatch.delenv("TRACELAKE_FAILPOINTS", raising=False)
    failpoint("after_commit")
    monkeypatch.setenv("TRACELAKE_FAILPOINTS", "after_open=raise")
    failpoint("after_commit")
    with pytest.raises(OSError) as raised:
        failpoint("after_open")
    assert raised.value.errno == errno.ENOSPC and "after_open" in str(raised.value)


def test_pause_waits_at_the_point_until_its_marker_is_removed(tmp_path):
    proc, marker = _child(tmp_path, "pause")
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    where = json.loads(marker.read_text())
    assert where["point"] == "before_commit" and where["run_id"] == "r1" and where["pgid"] == proc.pid
    time.sleep(0.3)
    assert proc.poll() is None  # still paused
    marker.unlink()
    out, _ = proc.communicate(timeout=60)
    assert out.strip() == "went on" and proc.returncode == 0


def test_exit_kills_the_whole_process_group(tmp_path):
    proc, _ = _child(tmp_path, "exit")
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
