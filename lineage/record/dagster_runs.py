"""Dagster's side of reconciliation: a run Tracelake finds dead must not stay STARTED in Dagster.

A process killed outright (OOM, ``kill -9``, a lost node) leaves its Dagster run STARTED until
Dagster's run monitoring - which needs the daemon - notices. Tracelake already knows, from its
open markers, which runs died; reconciliation then reports the Dagster run failed through the
instance's public API, so the Dagster UI, the audit store and MLflow say the same thing.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

import dagster as dg

__all__ = ["DagsterRuns"]

_IN_PROGRESS = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}


class DagsterRuns:
    """Answers "is this Dagster run still in progress?" and fails the ones found dead."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance

    def in_progress(self, dagster_run_id: str) -> bool | None:
        run = self.instance.get_run_by_id(dagster_run_id)
        return None if run is None else run.status in _IN_PROGRESS

    def mark_failed(self, record: dict[str, Any], detail: str) -> bool:
        """Report the record's Dagster run failed if Dagster still thinks it is running."""
        run_id = record.get("dagster_run_id")
        run = self.instance.get_run_by_id(run_id) if run_id else None
        if run is None or run.status not in _IN_PROGRESS:
            return False
        self.instance.report_run_failed(run, message=f"Tracelake reconciliation: component run "
                                                     f"{record['run_id']} ({record.get('component')}) was abandoned: "
                                                     f"{detail}")
        return True

    def fail_dead(self, records: Iterable[dict[str, Any]], pid_alive: Callable[[int], bool]) -> list[tuple[str, str]]:
        """Fail Dagster runs still in progress whose process is gone, though their component runs
        finished: a process killed after its final record (before the Dagster events, or in the
        audit flush at the end of the run) leaves no open marker for reconciliation to find.

        Only a run whose processes are known to be gone is failed: Dagster's RUN_START event names
        the run worker's pid, and records written on this host for that Dagster run prove it ran
        here - its steps in the run worker itself (in-process executor) or in subprocesses the
        worker started on this host (multiprocess executor). The run is failed when the worker's
        pid and every pid that wrote one of its records are gone; a run with records from other
        hosts only is left to Dagster's run monitoring. Returns (Dagster run id, reason) for each
        run failed."""
        host = socket.gethostname()
        pids: dict[str, set[int]] = {}
        for rec in records:
            if rec.get("dagster_run_id") and rec.get("host") == host:
                try:
                    pids.setdefault(str(rec["dagster_run_id"]), set()).add(int(rec["pid"]))
                except (TypeError, ValueError):  # no pid recorded (an external run)
                    continue
        if not pids:
            return []
        failed = []
        for run in self.instance.get_runs(filters=dg.RunsFilter(statuses=list(_IN_PROGRESS))):
            if run.run_id not in pids:
                continue
            starts = self.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
            pid = starts[-1].dagster_event.pid if starts and starts[-1].dagster_event is not None else None
            if pid is None or pid_alive(pid) or any(pid_alive(p) for p in pids[run.run_id]):
                continue
            reason = (f"Tracelake reconciliation: the process of this run (pid {pid} on {host}) is gone; its "
                      "component runs had finished, but the run never ended")
            self.instance.report_run_failed(run, message=reason)
            failed.append((run.run_id, reason))
        return failed
