"""Reconciliation: turn runs whose process died into ``abandoned`` records, and finish MLflow runs
whose logging queue died with their process.

A run is abandoned when its open marker outlives its process: same host and the pid is gone,
or (given a Dagster instance) its Dagster run is no longer in progress. Its record says what
reached the tables before the process died (each commit names the run), so an auditor sees
exactly what happened: the output commit and the quarantine commit written just before it are
rolled back, as a failed run's are; a batch a blocking test refused stays in ``__rejected``, as
a failed run's does. Each commit found is claimed by the record, so ``audit verify`` reads none
of them as forged.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.processes import pid_alive
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
from tracelake.lineage.record.errors_text import error_message
from tracelake.lineage.record.journal import RunAlreadyFinished
from tracelake.lineage.record.listeners import notify
from tracelake.lineage.record.mlflow_link import DatasetRef, flatten_params
from tracelake.lineage.record.rollback import roll_back

__all__ = ["ReconcileResult", "reconcile_dagster", "reconcile_mlflow", "reconcile_open_runs"]

log = logging.getLogger("tracelake.reconcile")


@dataclass
class ReconcileResult:
    run_id: str
    component: str
    action: str          # "abandoned" | "still-running" | "already-finished" | "dagster-failed" | "mlflow-finished"
    detail: str


def reconcile_open_runs(
    lake: Lakehouse,
    *,
    dagster_run_in_progress: Callable[[str], bool | None] | None = None,
    min_age_s: float = 0.0,
    on_abandoned: Callable[[dict[str, Any], str], Any] | None = None,
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
            alive = pid_alive(opened.pid) and opened.pid != os.getpid()
        if dagster_run_in_progress is not None and row.get("dagster_run_id"):
            in_progress = dagster_run_in_progress(row["dagster_run_id"])
            if in_progress is not None:
                alive = in_progress if alive is None else (alive and in_progress)
        if alive is None or alive:
            results.append(ReconcileResult(row["run_id"], row["component"], "still-running",
                                           f"pid {opened.pid} on {opened.host}"))
            continue
        record = dict(row)
        detail = f"process {opened.pid} on {opened.host} ended without finishing the run" + _landed(lake, row, record)
        ended = datetime.now(UTC)
        started = row.get("started_at")
        record.update(status="abandoned", ended_at=ended, error_type="tracelake.Abandoned", error_message=detail,
                      duration_ms=(ended - started).total_seconds() * 1000 if started else None)
        try:
            final = lake.journal.append(COMPONENT_RUNS, row["run_id"], record, close_run=row["run_id"])
        except RunAlreadyFinished:  # another reconciler (or the run itself, late) finished it first
            results.append(ReconcileResult(row["run_id"], row["component"], "already-finished", detail))
            continue
        notify(lake.listeners, "run_finished", final)
        if on_abandoned is not None:
            on_abandoned(final, detail)
        results.append(ReconcileResult(row["run_id"], row["component"], "abandoned", detail))
        log.warning("run %s (%s) recorded as abandoned: %s", row["run_id"], row["component"], detail)
    return results


def _landed(lake: Lakehouse, row: dict[str, Any], record: dict[str, Any]) -> str:
    """What the dead run had committed (noted in ``record``), its rows rolled back; the words for
    the record's message."""
    table = row.get("output_table")
    path = lake.layout.resolve(table, row.get("output_path"))
    commit = delta_meta.find_commit(path, row["run_id"]) if path else None
    if path is None or commit is None:
        detail = "; no output was committed"
    else:
        record.update(output_version=commit.version, output_rows=commit.rows_added,
                      output_files=len(commit.adds), output_bytes=commit.bytes_added,
                      content_digest=delta_meta.files_digest(path, commit))
        mode = row.get("write_mode") or ("partition" if commit.partitions_touched() else "append")
        said, record["rolled_back_version"] = _roll_back_landed(path, row["run_id"], commit, mode)
        detail = f"; its output commit (version {commit.version}) had landed; {said}"
    return detail + (_side_commits(lake, str(table), row["run_id"], record) if table else "")


def _side_commits(lake: Lakehouse, table: str, run_id: str, record: dict[str, Any]) -> str:
    """The quarantine commit (written just before the output's) and the rejected batch of a dead
    run. Quarantined rows are rolled back like the output's: a failed run's are too, and rows of a
    run that did not succeed must not stay visible. A rejected batch stays: a failed run's does,
    it is what the gate refused, kept for inspection (and no reader takes it for output)."""
    detail = ""
    quarantine = f"{table}__quarantine"
    path = lake.layout.table(quarantine)
    commit = delta_meta.find_commit(path, run_id)
    if commit is not None:
        record.update(quarantine_table=quarantine, quarantine_version=commit.version,
                      quarantined_rows=commit.rows_added)
        # Quarantined rows are appended to a partition (or replace an earlier run's there) even
        # when the output overwrites the table.
        said, _ = _roll_back_landed(path, run_id, commit, "partition" if commit.partitions_touched() else "append")
        detail += f"; its quarantine commit ({quarantine}@v{commit.version}) had landed; {said}"
    rejected = f"{table}__rejected"
    commit = delta_meta.find_commit(lake.layout.table(rejected), run_id)
    if commit is not None:
        record.update(rejected_table=rejected, rejected_version=commit.version, rejected_rows=commit.rows_added)
        detail += f"; its rejected batch was kept in {rejected}@v{commit.version}"
    return detail


def _roll_back_landed(path: str, run_id: str, commit: delta_meta.Commit, mode: str) -> tuple[str, int | None]:
    """An abandoned run's landed commit must not stay visible: roll it back. Returns what was
    done, in words, and the rollback commit's version (None: none)."""
    parts = sorted(commit.partitions_touched()) or None
    try:
        done = roll_back(path, run_id, commit.version, mode, parts)
    except Exception as exc:  # said in the record, never hidden
        return f"its rows could NOT be rolled back ({error_message(exc)}): re-run the partition", None
    if done.version is None:
        # Rolled back already - by the run itself before it died, or by a racing reconciler -
        # the record still names the rollback commit.
        earlier = _rollback_commit(path, run_id, commit.version)
        if earlier is None:
            return "its rows had already been replaced", None
        return f"its rows had been rolled back at version {earlier}", earlier
    return f"its rows were rolled back at version {done.version}", done.version


def _rollback_commit(path: str, run_id: str, after: int) -> int | None:
    """The first commit after version ``after`` that rolls back ``run_id`` (None if none)."""
    latest = delta_meta.latest_version(path)
    for version in range(after + 1, (latest if latest is not None else after) + 1):
        try:
            commit = delta_meta.read_commit(path, version)
        except delta_meta.CommitMissing:
            continue
        if commit.user_metadata.get("tracelake_rollback_of") == run_id:
            return version
    return None


def reconcile_dagster(lake: Lakehouse, dagster_runs: Any) -> list[ReconcileResult]:
    """Fail Dagster runs left in progress by a process that died after its component runs
    finished (``DagsterRuns.fail_dead``): no open marker is left for them, yet Dagster must not
    keep them STARTED forever."""
    runs = lake.store.component_runs(include_open=False)
    if runs.empty:
        return []
    records = runs[["dagster_run_id", "host", "pid"]].to_dict("records")
    return [ReconcileResult(dagster_run_id, "dagster", "dagster-failed", reason)
            for dagster_run_id, reason in dagster_runs.fail_dead(records, pid_alive)]


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
                        metrics=dict(rec["metrics"]) if rec.get("metrics") is not None else {},
                        tags={"tracelake.status": rec["status"], "tracelake.reconciled": "true"},
                        datasets=inputs).result(timeout=120)
        results.append(ReconcileResult(rid, rec["component"], "mlflow-finished", mrun.info.run_id))
    return results
