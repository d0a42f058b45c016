"""The component-run recorder: what happened in one materialisation, durably.

Lifecycle of one run (all steps are synchronous unless noted):

1. ``begin``: an *open* marker goes to the journal before any work, and MLflow run creation is
   started in the background.
2. ``read_input``: each input is pinned to the Delta version that is newest at that moment and
   read *at that version*, so the recorded version is the version actually read.
3. the component's code runs.
4. ``commit_output``: the output becomes one Delta commit naming the run; the recorder finds
   that commit in the log and records its version, rows, files, schema hash and file digest.
5. ``finish``: the final record (succeeded / failed / skipped / abandoned) is chained into the
   journal and the open marker removed in the same transaction; MLflow params, metrics and
   datasets are queued.

A process killed between 1 and 5 leaves the open marker behind; ``reconcile`` later records it as
abandoned (and says whether its output commit landed), so a killed run never reads as succeeded.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tracelake.lineage.layout import Layout
from tracelake.lineage.openlineage.ids import openlineage_run_id
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.audit_store import AuditStore
from tracelake.lineage.record.audit_tables import CHECK_RESULTS, COMPONENT_RUNS, METRICS
from tracelake.lineage.record.checks import CheckResult, check_result_rows
from tracelake.lineage.record.errors import ConcurrentPartitionWriteError, MissingInputError
from tracelake.lineage.record.errors_text import error_message, error_trace
from tracelake.lineage.record.journal import RunAlreadyFinished
from tracelake.lineage.record.listeners import RunListener, notify
from tracelake.lineage.record.mlflow_link import DatasetRef, MlflowLink, flatten_params
from tracelake.lineage.record.provenance import git_state, library_versions
from tracelake.lineage.record.redact import bound_text, redact_mapping, redact_record, scrub_exception, scrub_text
from tracelake.lineage.record.rollback import roll_back
from tracelake.lineage.record.run import ComponentRun, OutputRecord, RunTimings
from tracelake.lineage.record.runid import new_run_id
from tracelake.lineage.record.tables import SchemaPolicy, WriteMode, read_version, write_commit

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["Recorder"]

log = logging.getLogger("tracelake.recorder")


def input_params(run: ComponentRun) -> dict[str, str]:
    """What the run read, as MLflow params (where MLflow users look first): table versions and
    partition spans, and model versions."""
    out: dict[str, str] = {}
    for i in run.inputs:
        if i["kind"] == "model":
            out[f"input.model.{i['name']}"] = f"v{i['model_version']}"
            continue
        out[f"input.{i['name']}.version"] = str(i["version"])
        parts = i.get("partitions") or []
        if parts:
            out[f"input.{i['name']}.partitions"] = f"{parts[0]}..{parts[-1]} ({len(parts)})"
    return out


class Recorder:
    """Records component runs into the audit store, the data tables and MLflow."""

    def __init__(self, *, layout: Layout, store: AuditStore, mlflow: MlflowLink,
                 spark_provider: Callable[[], SparkSession], digest_files: bool = True,
                 listeners: list[RunListener] | None = None):
        self.layout = layout
        self.listeners: list[RunListener] = listeners if listeners is not None else []
        # Final records the journal refused (full disk...), retried at every later chance.
        self.unwritten: list[tuple[str, dict[str, Any]]] = []
        atexit.register(self.retry_unwritten)
        self.store = store
        self.mlflow = mlflow
        self._spark_provider = spark_provider
        self.digest_files = digest_files
        # The recorder's own cost per finished run, newest last (benchmarks, debugging overhead).
        self.recent_timings: deque[tuple[str, str, RunTimings]] = deque(maxlen=1000)

    def spark(self) -> SparkSession:
        return self._spark_provider()

    # -- 1. begin --------------------------------------------------------------------------------
    def begin(
        self,
        *,
        component: str,
        asset_key: str,
        partition_key: str | None = None,
        partition_keys: Sequence[str] | None = None,
        dagster_run_id: str | None = None,
        code_version: str | None = None,
        source_hash: str | None = None,
        source_path: str | None = None,
        owner: str | None = None,
        tags: Mapping[str, str] | None = None,
        config: Mapping[str, Any] | None = None,
        lineage_keys: Mapping[str, Sequence[str]] | None = None,
        output_table: str | None = None,
        write_mode: str | None = None,
    ) -> ComponentRun:
        if self.unwritten:
            self.retry_unwritten()
        t0 = time.perf_counter()
        run = ComponentRun(
            recorder=self, run_id=new_run_id(), component=component, asset_key=asset_key,
            partition_key=partition_key, partition_keys=list(partition_keys) if partition_keys else None,
            dagster_run_id=dagster_run_id, code_version=code_version, source_hash=source_hash,
            source_path=source_path, owner=owner, tags=redact_mapping(dict(tags or {})),
            config=redact_mapping(dict(config or {})), started_at=datetime.now(UTC),
            lineage_keys={k: list(v) for k, v in lineage_keys.items()} if lineage_keys else None,
            planned_table=output_table, planned_mode=write_mode,
        )
        opened = self._record(run)
        self.store.journal.open_run(run.run_id, opened)
        notify(self.listeners, "run_started", opened)
        run.timings.add("audit_ms", t0)
        git = git_state(source_path) if source_path else None
        run._mlflow = self.mlflow.start_run(
            component,
            run_name=f"{component}{'/' + partition_key if partition_key else ''} {run.run_id[-6:]}",
            tags={
                "tracelake.run_id": run.run_id,
                "tracelake.component": component,
                "dagster.run_id": dagster_run_id,
                "dagster.asset_key": asset_key,
                "dagster.partition_key": partition_key,
                "tracelake.code_version": code_version,
                "mlflow.source.git.commit": git.commit if git else None,
                "tracelake.git_dirty": str(git.dirty) if git and git.dirty is not None else None,
                "mlflow.source.name": source_path,
            },
        )
        return run

    # -- 2. inputs -------------------------------------------------------------------------------
    def read_input(self, run: ComponentRun, name: str, *, partitions: Sequence[str] | None = None,
                   version: int | None = None, path: str | None = None,
                   allow_missing_partitions: bool = True, whole_if_unpartitioned: bool = False) -> DataFrame:
        """Pin ``name`` at its newest version (or ``version``), record it, and read exactly that.

        ``partitions``: only those partitions (some may be missing, noted in the record; all
        missing raises :class:`MissingInputError`). ``whole_if_unpartitioned``: the partitions
        came from Dagster's partition mapping, and a table that is not partitioned is read whole.
        """
        t0 = time.perf_counter()
        path = path or self.layout.table(name)
        latest = delta_meta.latest_version(path)
        if latest is None:
            raise MissingInputError(
                f"input table {name!r} does not exist at {path}; materialise {name} first "
                f"(e.g. `dagster asset materialize --select {name}`)"
            )
        pinned = latest if version is None else int(version)
        if pinned > latest or pinned < 0:
            raise MissingInputError(f"input table {name!r} has no version {pinned} (newest is {latest})")
        present: list[str] | None = None
        missing: list[str] = []
        if partitions is not None and whole_if_unpartitioned and delta_meta.partitions_at(path, pinned) is None:
            partitions = None
        if partitions is not None:
            present_all = set(self._partitions_at(path, pinned))
            present = [p for p in partitions if p in present_all]
            missing = [p for p in partitions if p not in present_all]
            if missing:
                # Materialised with zero rows is not "never arrived".
                empty = delta_meta.empty_partitions(path, pinned, missing)
                missing = [p for p in missing if p not in empty]
            if missing and (not present or not allow_missing_partitions):
                raise MissingInputError(
                    f"input {name!r} has no data for partition(s) {', '.join(missing[:5])}"
                    f"{' ...' if len(missing) > 5 else ''} at version {pinned}; materialise them upstream first"
                )
        run.inputs.append({
            "kind": "table", "name": name, "path": path, "version": pinned,
            "partitions": list(partitions) if partitions is not None else None,
            "missing_partitions": missing or None,
        })
        run.timings.add("lineage_ms", t0)
        return read_version(self.spark(), path, pinned, present)

    def _partitions_at(self, path: str, version: int) -> list[str]:
        values = delta_meta.partitions_at(path, version)
        if values is None:
            raise MissingInputError(f"{path} is not partitioned by _tl_partition, so it cannot be read by partition")
        return values

    def load_model(self, run: ComponentRun, name: str, version: str, *, flavor: str = "sklearn") -> Any:
        t0 = time.perf_counter()
        uri = f"models:/{name}/{version}"
        client = self.mlflow.client
        mv = client.get_model_version(name, version)
        run.inputs.append({"kind": "model", "name": name, "model_version": str(version),
                           "mlflow_run_id": mv.run_id, "uri": uri})
        run.models.append({"role": "loaded", "name": name, "version": str(version), "uri": uri,
                           "mlflow_run_id": mv.run_id})
        run.timings.add("lineage_ms", t0)
        return self.mlflow.load_model(uri, flavor)

    # -- 4. output --------------------------------------------------------------------------------
    def commit_output(self, run: ComponentRun, df: DataFrame, *, table: str, mode: WriteMode,
                      schema_policy: SchemaPolicy = "strict") -> OutputRecord:
        # MLflow must exist before data lands: a committed output always has a complete link.
        run._mlflow_ids()
        path = self.layout.table(table)
        partitions = run.partition_keys if mode == "partition" else None
        t0 = time.perf_counter()
        before = delta_meta.latest_version(path)
        replace = True
        if mode == "partition" and partitions:
            existing = set(self._partitions_at(path, before)) if before is not None else set()
            replace = bool(existing & set(partitions))
        run.timings.add("lineage_ms", t0)
        user_metadata = {"tracelake_run_id": run.run_id, "component": run.component,
                         "partition": run.partition_key, "dagster_run_id": run.dagster_run_id}
        written = write_commit(self.spark(), path, df, run_id=run.run_id, mode=mode, partitions=partitions,
                               schema_policy=schema_policy, replace_existing=replace, user_metadata=user_metadata)
        t1 = time.perf_counter()
        commit = delta_meta.find_commit(path, run.run_id, oldest=(before + 1) if before is not None else 0)
        if commit is None and before is not None:
            # An empty output appended to an existing table: Spark skipped the commit.
            delta_meta.empty_commit(path, json.dumps(user_metadata, sort_keys=True))
            commit = delta_meta.find_commit(path, run.run_id, oldest=before + 1)
        if commit is None:
            raise RuntimeError(f"the write to {path} succeeded but no commit names run {run.run_id}; "
                               "was the table's log rewritten concurrently?")
        schema_hash, schema_json = delta_meta.schema_fingerprint(delta_meta.schema_at(path, commit.version))
        digest = delta_meta.files_digest(path, commit) if self.digest_files else ""
        rows = commit.rows_added
        if rows is None:
            rows = int(commit.info.get("operationMetrics", {}).get("numOutputRows", 0))
        run.output = OutputRecord(
            table=table, path=path, version=commit.version, rows=rows, files=len(commit.adds),
            bytes=commit.bytes_added, partitions=list(partitions) if partitions else None,
            schema_hash=schema_hash, schema_json=schema_json, content_digest=digest, write_mode=mode,
            schema=written.schema, added_files=delta_meta.added_files(commit),
        )
        if mode == "partition" and not replace:
            # After run.output is set, so a failure here still records the version that landed.
            self._check_no_concurrent_partition_write(path, run, commit.version, before, partitions or [])
        run.timings.add("lineage_ms", t1)
        return run.output

    def commit_quarantine(self, run: ComponentRun, df: DataFrame, *, table: str, mode: WriteMode,
                          rows: int | None = None) -> OutputRecord | None:
        """Rows that failed a quarantining test: one commit to ``table`` (nothing is dropped).

        No bad rows: nothing is written, unless an earlier run of the same partition left
        quarantined rows, which this run's (empty) quarantine then replaces."""
        path = self.layout.table(table)
        partitions = run.partition_keys if mode == "partition" else None
        before = delta_meta.latest_version(path)
        if (rows if rows is not None else df.limit(1).count()) == 0:
            stale = before is not None and mode == "partition" and bool(
                set(delta_meta.partitions_at(path, before) or []) & set(partitions or []))
            if not stale:  # nothing to write and nothing to replace: no commit (version -1)
                run.quarantine = OutputRecord(table=table, path=path, version=-1,
                                              rows=0, files=0, bytes=0, partitions=partitions, schema_hash="",
                                              schema_json="", content_digest="", write_mode=mode)
                return None
        write_commit(self.spark(), path, df, run_id=run.run_id, mode="append" if mode == "overwrite" else mode,
                     partitions=partitions, schema_policy="merge",
                     user_metadata={"tracelake_run_id": run.run_id, "component": run.component,
                                    "partition": run.partition_key, "quarantine": True})
        commit = delta_meta.find_commit(path, run.run_id, oldest=(before + 1) if before is not None else 0)
        if commit is None:
            raise RuntimeError(f"the quarantine write to {path} succeeded but no commit names run {run.run_id}")
        run.quarantine = OutputRecord(table=table, path=path, version=commit.version, rows=commit.rows_added,
                                      files=len(commit.adds), bytes=commit.bytes_added, partitions=partitions,
                                      schema_hash="", schema_json="", content_digest="", write_mode=mode)
        return run.quarantine

    def roll_back(self, run: ComponentRun) -> list[str]:
        """Take a failing run's committed rows back out of its tables (see ``rollback``); returns
        what was done, for the record. A rollback that itself fails is said, never hidden."""
        notes = []
        for out in (run.output, run.quarantine):
            if out is None or out.files == 0 or out.version < 0:
                continue
            try:
                done = roll_back(out.path, run.run_id, out.version, out.write_mode, out.partitions)
            except Exception as exc:  # the record must say the rows are still visible
                notes.append(f"rollback of {out.table}@v{out.version} FAILED ({error_message(exc)}); its rows are "
                             "still visible - re-run the partition or roll back by hand")
                continue
            if done.version is not None:
                notes.append(f"{out.table}@v{out.version} rolled back at v{done.version} ({done.rows_removed} rows "
                             f"removed, {done.rows_restored} restored)")
                if out is run.output:
                    run.rolled_back_version = done.version
        return notes

    def commit_rejected(self, run: ComponentRun, df: DataFrame, *, table: str,
                        violations: Sequence[str]) -> OutputRecord | None:
        """A batch a blocking test refused: kept in ``table`` (one commit, nothing dropped).

        Each row is stored as JSON text beside the tests it failed, so a feed whose shape changed
        (the usual reason for a gate to close) can always be kept, whatever its columns are.
        """
        from pyspark.sql import functions as F

        path = self.layout.table(table)
        before = delta_meta.latest_version(path)
        rows = df.select(F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns])).alias("row_json"),
                         F.array(*[F.lit(v) for v in violations]).alias("_tl_violations"))
        user_metadata = {"tracelake_run_id": run.run_id, "component": run.component,
                         "partition": run.partition_key, "rejected": True}
        write_commit(self.spark(), path, rows, run_id=run.run_id, mode="append", schema_policy="merge",
                     user_metadata=user_metadata)
        commit = delta_meta.find_commit(path, run.run_id, oldest=(before + 1) if before is not None else 0)
        if commit is None:
            return None  # nothing was kept (an empty batch): the record says so
        run.rejected = OutputRecord(table=table, path=path, version=commit.version, rows=commit.rows_added,
                                    files=len(commit.adds), bytes=commit.bytes_added, partitions=None,
                                    schema_hash="", schema_json="", content_digest="", write_mode="append")
        return run.rejected

    def _check_no_concurrent_partition_write(self, path: str, run: ComponentRun, version: int,
                                            before: int | None, partitions: Sequence[str]) -> None:
        """A first write of a partition is a blind append; make sure nobody else appended it too."""
        from tracelake.lineage.layout import PARTITION_COLUMN

        wanted = set(partitions)
        for v in range((before + 1) if before is not None else 0, version):
            other = delta_meta.read_commit(path, v)
            touched = {a.get("partitionValues", {}).get(PARTITION_COLUMN) for a in other.adds}
            if touched & wanted:
                raise ConcurrentPartitionWriteError(
                    f"partition(s) {sorted(touched & wanted)} of {path} were written first by run "
                    f"{other.user_metadata.get('tracelake_run_id', '?')} (version {v}) while run {run.run_id} "
                    f"wrote version {version}: the first writer wins, this run's rows are rolled back"
                )

    # -- 5. finish --------------------------------------------------------------------------------
    def succeed(self, run: ComponentRun) -> dict[str, Any]:
        return self._finish(run, "succeeded")

    def skip(self, run: ComponentRun, reason: str) -> dict[str, Any]:
        run.set_tag("tracelake.skip_reason", reason)
        return self._finish(run, "skipped", error=None, reason=reason)

    def fail(self, run: ComponentRun, exc: BaseException, *, abandoned: bool = False,
             notes: Sequence[str] = ()) -> dict[str, Any]:
        scrub_exception(exc)  # in place: the same exception goes on to Dagster's event log and the logs
        return self._finish(run, "abandoned" if abandoned else "failed", error=exc, notes=notes)

    def _finish(self, run: ComponentRun, status: str, error: BaseException | None = None,
                reason: str | None = None, notes: Sequence[str] = ()) -> dict[str, Any]:
        """Write the run's final record; the run's status changes only once it is durable.

        If the journal refuses the record (a full or read-only disk), the run is recorded
        *failed* with that cause and the version its commit reached, in a smaller record; if even
        that is refused, the record is kept in memory and retried at every later chance (the
        next run, the end of the Dagster run, process exit) - and the open marker stays, so
        reconciliation records the run abandoned should the process die first.
        """
        ended = datetime.now(UTC)
        mlflow_ids: tuple[str, str] | None = None
        mlflow_error: BaseException | None = None
        try:
            mlflow_ids = run._mlflow_ids()
        except BaseException as exc:  # the audit record must still be written; the error is recorded
            mlflow_error = exc
            if error is None:
                error, status = exc, "failed"
        record = self._record(run)
        record.update(status=status, ended_at=ended, duration_ms=(ended - run.started_at).total_seconds() * 1000)
        if reason:
            record["error_message"] = bound_text(reason, 4000)
        if error is not None:
            record["error_type"] = f"{type(error).__module__}.{type(error).__qualname__}"
            record["error_message"] = error_message(error)
            record["error_trace"] = error_trace(error)
        if notes:
            record["error_message"] = f"{record.get('error_message') or ''} [{'; '.join(notes)}]"[:4000]
        if mlflow_ids:
            record["mlflow_experiment_id"], record["mlflow_run_id"] = mlflow_ids
            record["mlflow_run_url"] = self.mlflow.run_url(*mlflow_ids)
        t0 = time.perf_counter()
        try:
            final = self.store.journal.append(COMPONENT_RUNS, run.run_id, record, close_run=run.run_id)
        except RunAlreadyFinished:
            raise
        except Exception as exc:
            final = self._finish_after_refusal(run, record, exc)
            status = final["status"]
        run.status = status
        notify(self.listeners, "run_finished", final)
        run.timings.add("audit_ms", t0)
        self.recent_timings.append((run.run_id, run.component, run.timings))
        if mlflow_ids and mlflow_error is None:
            self._queue_mlflow(run, status, mlflow_ids[1], record.get("error_message") if status != "succeeded" else None)
        return final

    def _finish_after_refusal(self, run: ComponentRun, record: dict[str, Any], refusal: Exception) -> dict[str, Any]:
        """The final record could not be written: record the run failed, naming why."""
        landed = f"; its output commit {record['output_table']}@v{record['output_version']} had landed" \
            if record.get("output_version") is not None else ""
        failed = {**record, "status": "failed", "error_type": f"{type(refusal).__module__}.{type(refusal).__qualname__}",
                  "error_message": f"the run's final record could not be written: {error_message(refusal)}{landed}",
                  "error_trace": error_trace(refusal)[-2000:]}
        try:
            return self.store.journal.append(COMPONENT_RUNS, run.run_id, failed, close_run=run.run_id)
        except RunAlreadyFinished:
            raise
        except Exception:
            # The newest record of the run replaces any older one still waiting (a refused
            # succeed, then a refused fail after the rollback: the latter names the rollback).
            self.unwritten = [(rid, rec) for rid, rec in self.unwritten if rid != run.run_id] + [(run.run_id, failed)]
            log.error("run %s: final record refused (%s); kept in memory and retried later", run.run_id,
                      scrub_text(str(refusal)))
            raise refusal from None

    def retry_unwritten(self) -> int:
        """Write final records the journal refused earlier (e.g. once a full disk has room)."""
        written = 0
        while self.unwritten:
            run_id, record = self.unwritten[0]
            try:
                final = self.store.journal.append(COMPONENT_RUNS, run_id, record, close_run=run_id)
            except RunAlreadyFinished:
                self.unwritten.pop(0)  # reconciliation got there first
                continue
            except Exception:
                return written
            self.unwritten.pop(0)
            notify(self.listeners, "run_finished", final)
            written += 1
        return written

    def _queue_mlflow(self, run: ComponentRun, status: str, mlflow_run_id: str, note: str | None) -> None:
        trains = any(m["role"] == "registered" for m in run.models)
        datasets = [DatasetRef(i["name"], i["path"], i["version"], "training" if trains else "input")
                    for i in run.inputs if i["kind"] == "table"]
        if run.output is not None:
            datasets.append(DatasetRef(run.output.table, run.output.path, run.output.version, "output",
                                       digest=run.output.content_digest[:16] or None, rows=run.output.rows))
        tags = {**redact_mapping(run.extra_tags), "tracelake.status": status}  # a tag named like a credential: ***
        if run.output is not None:
            tags.update({"tracelake.output": f"{run.output.table}@v{run.output.version}",
                         "tracelake.output_rows": str(run.output.rows)})
        if note:
            tags["mlflow.note.content"] = note
        self.mlflow.finish_run(mlflow_run_id, status=status, params={**flatten_params(run.config), **input_params(run)},
                               metrics=run.metrics, tags=tags, datasets=datasets)

    def _record(self, run: ComponentRun) -> dict[str, Any]:
        git = git_state(run.source_path) if run.source_path else None
        out = run.output
        return {
            "run_id": run.run_id,
            "component": run.component,
            "asset_key": run.asset_key,
            "partition_key": run.partition_key,
            "dagster_run_id": run.dagster_run_id,
            "status": run.status,
            "started_at": run.started_at,
            "code_version": run.code_version,
            "git_commit": git.commit if git else None,
            "git_dirty": git.dirty if git else None,
            "git_branch": git.branch if git else None,
            "source_hash": run.source_hash,
            "library_versions": library_versions(),
            "config_json": json.dumps(run.config, sort_keys=True, default=str),
            "owner": run.owner,
            "tags": redact_mapping({**run.tags, **run.extra_tags}),  # a tag named like a credential: ***
            "lineage_keys_json": json.dumps(run.lineage_keys, sort_keys=True) if run.lineage_keys else None,
            "inputs": run.inputs,
            "output_table": out.table if out else run.planned_table,
            "output_path": out.path if out else (self.layout.table(run.planned_table) if run.planned_table else None),
            "output_version": out.version if out else None,
            "output_rows": out.rows if out else None,
            "output_files": out.files if out else None,
            "output_bytes": out.bytes if out else None,
            "output_partitions": out.partitions if out else None,
            "output_schema_hash": out.schema_hash if out else None,
            "output_schema_json": out.schema_json if out else None,
            "content_digest": out.content_digest if out else None,
            "output_added_files": out.added_files if out else None,
            "write_mode": out.write_mode if out else run.planned_mode,
            "quarantine_table": run.quarantine.table if run.quarantine else None,
            "quarantine_version": run.quarantine.version if run.quarantine and run.quarantine.version >= 0 else None,
            "quarantined_rows": run.quarantine.rows if run.quarantine else None,
            "rejected_table": run.rejected.table if run.rejected else None,
            "rejected_version": run.rejected.version if run.rejected else None,
            "rejected_rows": run.rejected.rows if run.rejected else None,
            "rolled_back_version": run.rolled_back_version,
            "models": run.models,
            "metrics": run.metrics,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "openlineage_run_id": openlineage_run_id(run.run_id),
        }

    # -- other audit records ---------------------------------------------------------------------
    def record_checks(self, run: ComponentRun, results: Sequence[CheckResult]) -> list[dict[str, Any]]:
        rows = check_result_rows(run, results)
        recorded = self.store.journal.append_many(CHECK_RESULTS, [(str(r["check_id"]), r) for r in rows])
        notify(self.listeners, "checks_recorded", recorded)
        return recorded

    def record_metrics(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        rows = [redact_record(r) for r in rows]  # slice names and notes are text: secrets out
        return self.store.journal.append_many(METRICS, [(str(r["metric_id"]), r) for r in rows])
