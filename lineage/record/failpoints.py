"""Named points where a test can stop, crash or fail a process on purpose (crash testing only).

``failpoint(name)`` does nothing unless the environment variable ``TRACELAKE_FAILPOINTS`` names
that point (read at call time: a dictionary lookup, microseconds). The value is a comma-separated
list of ``point=action``:

- ``pause``: write the marker file named by ``TRACELAKE_FAILPOINT_MARKER`` (JSON: point, pid,
  process group) and sleep, so the test can kill the *whole process group* (Python, the JVM,
  Python workers) at exactly that point; deleting the marker file lets the process go on (a test
  that must change the world at that point - fill a disk, remount it read-only - and then resume);
  a pause nobody ends exits the process after ``TRACELAKE_FAILPOINT_MAX_PAUSE`` seconds (3600);
- ``raise``: raise ``OSError(ENOSPC)``, a refused write where a real full disk cannot be arranged;
- ``exit``: end the process group at once with SIGKILL (no test polling needed).

The points are step boundaries of ``Materialisation.run`` and ``AuditStore.flush`` (see
docs/recording.md, "Crashes and races"); ``tests/crash`` drives them.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time

__all__ = ["ENV", "MARKER_ENV", "failpoint"]

ENV = "TRACELAKE_FAILPOINTS"
MARKER_ENV = "TRACELAKE_FAILPOINT_MARKER"


def failpoint(name: str, **context: object) -> None:
    """Act as ``TRACELAKE_FAILPOINTS`` says for point ``name`` (nothing when unset)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    for item in spec.split(","):
        point, _, action = item.strip().partition("=")
        if point == name:
            _act(name, action or "pause", context)
            return


def _act(name: str, action: str, context: dict[str, object]) -> None:
    if action == "raise":
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (failpoint {name})")
    if action == "exit":
        os.killpg(os.getpgrp(), signal.SIGKILL)
    if action != "pause":
        raise ValueError(f"{ENV}: unknown action {action!r} for {name!r}; use pause, raise or exit")
    marker = os.environ.get(MARKER_ENV)
    if marker:
        body = json.dumps({"point": name, "pid": os.getpid(), "pgid": os.getpgrp(),
                           **{k: str(v) for k, v in context.items()}})
        tmp = f"{marker}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(body)
        os.replace(tmp, marker)  # whole or absent: the test never reads half a marker
    # A test that died never resumes nor kills us: give up after a while rather than linger forever.
    deadline = time.monotonic() + float(os.environ.get("TRACELAKE_FAILPOINT_MAX_PAUSE", "3600"))
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if marker and not os.path.exists(marker):
            return  # the test removed the marker: go on
    os._exit(70)  # the Spark JVM ends with us (its gateway exits when this process's pipe closes)
