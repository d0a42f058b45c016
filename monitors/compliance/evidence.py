"""Files as evidence: their SHA-256, computed in one streaming pass."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

__all__ = ["file_evidence", "resolve_report_path", "sha256_file"]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_evidence(path: str | None) -> dict[str, Any]:
    """SHA-256 and size of a file a report points to, or that it is missing (said, not hidden)."""
    if not path:
        return {}
    local = Path(path[len("file://"):] if path.startswith("file://") else path)
    if not local.is_file():
        return {"state": "missing"}
    return {"state": "present", "sha256": sha256_file(local), "bytes": local.stat().st_size}


def resolve_report_path(home: str, recorded: str | None) -> str | None:
    """Where a report file recorded under some lakehouse's ``reports/`` folder is *now*.

    Records keep the path of the day they were written; a lakehouse that was moved or copied still
    finds its own reports (the same rule ``Layout.resolve`` applies to tables)."""
    if not recorded or (Path(recorded).is_file() and recorded.startswith(home.rstrip("/") + "/")):
        return recorded
    marker = "/reports/"
    if marker in recorded:
        candidate = Path(home) / "reports" / recorded.rsplit(marker, 1)[1]
        if candidate.is_file():
            return str(candidate)
    return recorded
