"""Reconciliation: turn runs whose process died into ``abandoned`` records, and finish MLflow runs
whose logging queue died with their process.

A run is abandoned when its open marker outlives its process: same host and the pid is gone,
or (given a Dagster instance) its Dagster run is no longer in progress. Its record says whether
the output commit landed before the process died (the commit names the run), so an auditor sees
exactly what reached the table.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.record.mlflow_link import DatasetRef, flatten_params

__all__ = ["reconcile_open_runs", "reconcile_mlflow", "ReconcileResult"]

log = logging.getLogger("tracelake.reconcile")


@dataclass
class ReconcileResult:
    run_id: str
    component: str
    action: str          # "abandoned" | "still-running" | "mlflow-finished"
    detail: str


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reconcile_open_runs(
    lake: Lakehouse,
    *,
    dagster_run_in_progress: Callable[[str], bool | None] | None = None,
    min_age_s: float = 0.0,
) -> list[ReconcileResult]:
    """Record every dead open run as abandoned. ``dagster_run_in_progress(run_id)`` answers for
    runs on other hosts (None = unknown, leave it open)."""
    results: list[ReconcileResult] = []
    host = socket.gethostname()
    for opened in lake.journal.open_runs():
        row = opened.row
        if time.time() - opened.started_at < min_age_s:
            continue
        alive: bool | None = None
        if opened.host == host:
            alive = _pid_alive(opened.pid) and opened.pid != os.getpid()
        if dagster_run_in_progress is not None and row.get("dagster_run_id"):
            in_progress = dagster_run_in_progress(row["dagster_run_id"])
            if in_progress is not None:
                alive = in_progress if alive is None else (alive and in_progress)
        if alive is None or alive:
            results.append(ReconcileResult(row["run_id"], row["component"], "still-running",
                                           f"pid {opened.pid} on {opened.host}"))
            continue
        detail = f"process {opened.pid} on {opened.host} ended without finishing the run"
        record = dict(row)
        commit = None
        path = lake.layout.resolve(row.get("output_table"), row.get("output_path"))
        if path:
            commit = delta_meta.find_commit(path, row["run_id"])
        if commit is not None:
            detail += f"; its output commit (version {commit.version}) had landed"
            record.update(output_version=commit.version, output_rows=commit.rows_added,
                          output_files=len(commit.adds), output_bytes=commit.bytes_added,
                          content_digest=delta_meta.files_digest(path, commit))
        else:
            detail += "; no output was committed"
        ended = datetime.now(timezone.utc)
        started = row.get("started_at")
        record.update(status="abandoned", ended_at=ended, error_type="tracelake.Abandoned", error_message=detail,
                      duration_ms=(ended - started).total_seconds() * 1000 if started else None)
        lake.journal.append(COMPONENT_RUNS, row["run_id"], record, close_run=row["run_id"])
        results.append(ReconcileResult(row["run_id"], row["component"], "abandoned", detail))
        log.warning("run %s (%s) recorded as abandoned: %s", row["run_id"], row["component"], detail)
    return results


def reconcile_mlflow(lake: Lakehouse) -> list[ReconcileResult]:
    """Finish MLflow runs left RUNNING by a process that died after its audit record was final."""
    link = lake.mlflow
    client = link.client
    exps = [e.experiment_id for e in client.search_experiments(filter_string=f"name LIKE '{link.prefix}/%'")]
    if not exps:
        return []
    running = client.search_runs(exps, filter_string="attributes.status = 'RUNNING'", max_results=10000)
    if not running:
        return []
    runs = lake.store.component_runs(include_open=True).set_index("run_id")
    results = []
    for mrun in running:
        rid = mrun.data.tags.get("tracelake.run_id")
        if rid is None or rid not in runs.index:
            continue
        rec: dict[str, Any] = runs.loc[rid].to_dict()
        if rec["status"] == "started":
            continue
        recorded_inputs = rec.get("inputs")
        inputs = [DatasetRef(i["name"], i["path"], i["version"], "input")
                  for i in (list(recorded_inputs) if recorded_inputs is not None else []) if i.get("kind") == "table"]
        if rec.get("output_version") is not None:
            inputs.append(DatasetRef(rec["output_table"], rec["output_path"], int(rec["output_version"]), "output"))
        link.finish_run(mrun.info.run_id, status=rec["status"],
                        params=flatten_params(json.loads(rec.get("config_json") or "{}")),
                        metrics=dict(rec["metrics"]) if rec.get("metrics") is not None else {}, tags={"tracelake.status": rec["status"],
                                                                     "tracelake.reconciled": "true"},
                        datasets=inputs).result(timeout=120)
        results.append(ReconcileResult(rid, rec["component"], "mlflow-finished", mrun.info.run_id))
    return results
