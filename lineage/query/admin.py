"""Administrative actions leave a record: who ran what, why, and how it ended.

``tracelake sql --admin``, ``vacuum --run``, ``audit compact`` and ``audit anchor`` change the
lakehouse outside any pipeline run, so each is itself a pair of chained records in
``audit.admin_actions`` (docs/security.md, threat model):

- ``started``, journaled *before* the action touches anything - so an action whose process died
  half-way still shows that it was attempted, by whom and why;
- ``succeeded`` or ``failed: <first line of the error>`` after it, whose ``action_id`` is the
  started record's id + ``.end`` (the pair is found without relying on clocks).

Both records go through the journal like every other audit record (chained, anchored) and are
redacted first: a statement may carry a literal secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.record.audit_tables import ADMIN_ACTIONS
from tracelake.lineage.record.redact import bound_text, redact_record
from tracelake.lineage.record.runid import new_run_id

__all__ = ["admin_action", "operator"]


def operator() -> str:
    """Who is running this process. ``getpass`` fails in a container whose user has no passwd
    entry; the record must still be written, so fall back to the environment."""
    import getpass
    import os

    try:
        return getpass.getuser()
    except Exception:   # KeyError/OSError, depending on the platform
        return os.environ.get("USER") or os.environ.get("USERNAME") or f"uid {os.getuid()}"


def _journal(lake: Lakehouse, row: dict[str, Any]) -> None:
    lake.journal.append(ADMIN_ACTIONS, row["action_id"], redact_record(row))


@contextmanager
def admin_action(lake: Lakehouse, action: str, statement: str, *, reason: str | None = None,
                 actor: str | None = None) -> Iterator[str]:
    """Record ``action`` as started, run the body, record how it ended; yields the action id.

    An exception in the body (a Ctrl-C included) is recorded as ``failed: ...`` and re-raised.
    """
    import socket

    started = {"action_id": new_run_id(), "action": action, "statement": statement,
               "reason": reason.strip() if reason and reason.strip() else None, "actor": actor or operator(),
               "host": socket.gethostname(), "outcome": "started", "at": datetime.now(UTC)}
    _journal(lake, started)
    end = {**started, "action_id": f"{started['action_id']}.end"}
    try:
        yield started["action_id"]
    except BaseException as exc:
        lines = str(exc).strip().splitlines()
        why = lines[0] if lines else type(exc).__name__
        _journal(lake, {**end, "outcome": f"failed: {bound_text(why, 300)}", "at": datetime.now(UTC)})
        raise
    _journal(lake, {**end, "outcome": "succeeded", "at": datetime.now(UTC)})
