"""Error text for the record: the root cause first, secrets scrubbed, bounded.

A full disk inside a Spark write surfaces in Python as a Py4J error whose first line is a Java
wrapper ("An error occurred while calling o123.save"); the cause that matters - "No space left
on device" - sits many lines down a Java stack, or several exceptions deep in ``__cause__``. An
on-call reader needs it first.
"""

from __future__ import annotations

import errno
import os
import re
import traceback

from tracelake.lineage.record.redact import scrub_text

__all__ = ["error_message", "error_trace", "root_cause", "storage_problem"]

# Causes worth naming first, in the words an operator searches for.
_KNOWN = [
    # SQLite (the journal) says SQLITE_FULL in its own words.
    (re.compile(r"No space left on device|ENOSPC|Disk quota exceeded|database or disk is full", re.I),
     "No space left on device"),
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


_MKDIRS = re.compile(r"Mkdirs failed to create (?:file:)?(/[^\s]*)")


def storage_problem(path: str | os.PathLike) -> tuple[int, str] | None:
    """Why nothing can be written under ``path`` (errno, words): a read-only file system, no
    write permission, or no space left; None when it looks writable."""
    where = os.fspath(path)
    while where and not os.path.exists(where):
        where = os.path.dirname(where)
    try:
        stat = os.statvfs(where or "/")
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return errno.EROFS, "Read-only file system"
    if not os.access(where or "/", os.W_OK):
        return errno.EACCES, "Permission denied"
    if stat.f_bavail == 0:
        return errno.ENOSPC, "No space left on device"
    return None


def _why_not_writable(text: str) -> str | None:
    """Hadoop says only "Mkdirs failed to create <path>"; the storage under that path says why."""
    match = _MKDIRS.search(text)
    problem = storage_problem(match.group(1)) if match else None
    return problem[1] if problem else None


def root_cause(exc: BaseException) -> str | None:
    """The deepest cause an operator can act on, or None when the first line already says it."""
    for e in reversed(_chain(exc)):
        if isinstance(e, OSError) and e.errno in _ERRNO:
            return _ERRNO[e.errno]
    text = "\n".join(str(e) for e in _chain(exc))
    for pattern, name in _KNOWN:
        if pattern.search(text):
            if name.startswith("Cannot create a directory"):
                return _why_not_writable(text) or name
            return name
    deepest = _CAUSED_BY.findall(text)
    return deepest[-1].strip()[:300] if deepest else None


# Only a window a little larger than what is kept is scanned (a 5 MB message costs what a 5 KB
# one does); a secret cut by the window's edge lies in the margin, which is dropped after the scan.
_MARGIN = 512


def error_message(exc: BaseException, limit: int = 4000) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    cause = root_cause(exc)
    # First means first: "Failed to parse parquet: ... No space left on device" is led by the cause.
    said_first = cause is not None and re.match(rf"(\[Errno \d+\] )?{re.escape(cause)}", first) is not None
    text = first if cause is None or said_first else f"{cause} - {first}"
    return (scrub_text(text[:limit + _MARGIN]) or "")[:limit]


def error_trace(exc: BaseException, limit: int = 16000) -> str:
    return (scrub_text("".join(traceback.format_exception(exc))[-(limit + _MARGIN):]) or "")[-limit:]
