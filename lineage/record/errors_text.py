"""Error text for the record: the root cause first, secrets scrubbed, bounded.

A full disk inside a Spark write surfaces in Python as a Py4J error whose first line is a Java
wrapper ("An error occurred while calling o123.save"); the cause that matters - "No space left
on device" - sits many lines down a Java stack, or several exceptions deep in ``__cause__``. An
on-call reader needs it first.
"""

from __future__ import annotations

import errno
import re
import traceback

from tracelake.lineage.record.redact import scrub_text

__all__ = ["root_cause", "error_message", "error_trace"]

# Causes worth naming first, in the words an operator searches for.
_KNOWN = [
    (re.compile(r"No space left on device|ENOSPC|Disk quota exceeded", re.I), "No space left on device"),
    (re.compile(r"Read-only file system|EROFS", re.I), "Read-only file system"),
    (re.compile(r"Permission denied|EACCES|AccessDenied", re.I), "Permission denied"),
    (re.compile(r"Mkdirs failed to create", re.I), "Cannot create a directory (permission or read-only storage)"),
    (re.compile(r"Connection refused|UnknownHostException|timed out", re.I), "Cannot reach a service"),
]
_ERRNO = {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system",
          errno.EACCES: "Permission denied", errno.EDQUOT: "No space left on device"}
_CAUSED_BY = re.compile(r"Caused by: ([^\n]+)")


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return out


def root_cause(exc: BaseException) -> str | None:
    """The deepest cause an operator can act on, or None when the first line already says it."""
    for e in reversed(_chain(exc)):
        if isinstance(e, OSError) and e.errno in _ERRNO:
            return _ERRNO[e.errno]
    text = "\n".join(str(e) for e in _chain(exc))
    for pattern, name in _KNOWN:
        if pattern.search(text):
            return name
    deepest = _CAUSED_BY.findall(text)
    return deepest[-1].strip()[:300] if deepest else None


# Only a window a little larger than what is kept is scanned (a 5 MB message costs what a 5 KB
# one does); a secret cut by the window's edge lies in the margin, which is dropped after the scan.
_MARGIN = 512


def error_message(exc: BaseException, limit: int = 4000) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    cause = root_cause(exc)
    text = first if cause is None or cause in first else f"{cause} - {first}"
    return (scrub_text(text[:limit + _MARGIN]) or "")[:limit]


def error_trace(exc: BaseException, limit: int = 16000) -> str:
    return (scrub_text("".join(traceback.format_exception(exc))[-(limit + _MARGIN):]) or "")[-limit:]
