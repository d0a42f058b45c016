"""Who else hears about a component run: listeners called when a run opens and when it ends.

The audit record is written first (durably, in the journal); listeners are told afterwards, with
the record as it was journaled. A listener must never slow or fail the run it hears about - the
OpenLineage publisher, for instance, only enqueues - so an exception from a listener is logged and
dropped here, and the run goes on. Listeners are how integrations attach without the recorder
knowing them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from tracelake.lineage.record.redact import scrub_text

__all__ = ["RunListener", "notify"]

log = logging.getLogger("tracelake.listeners")


class RunListener(Protocol):
    def run_started(self, record: dict[str, Any]) -> None:
        """A run opened (``record`` is the open marker: status ``started``)."""

    def run_finished(self, record: dict[str, Any]) -> None:
        """A run ended: ``record`` is its final audit record (succeeded, failed, skipped or
        abandoned - the latter also from reconciliation, long after the process died)."""

    # Optional: ``checks_recorded(records)`` - the ``check_results`` records of a run's declared
    # tests, as journaled, before the run ends (the OpenLineage publisher turns them into data
    # quality assertions). A listener without the method is simply not told.


def notify(listeners: Sequence[RunListener], event: str, record: Any) -> None:
    for listener in listeners:
        method = getattr(listener, event, None)
        if method is None:  # an optional event this listener does not take
            continue
        try:
            method(record)
        except Exception as exc:  # a listener is never allowed to fail the run; the error is logged
            run_id = record.get("run_id") if isinstance(record, dict) else None
            log.error("run listener %s failed on %s of run %s: %s", type(listener).__name__, event, run_id,
                      scrub_text(str(exc)))
