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

The recorder holds the steps together; the writes of step 4 (and their rollback) are ``outputs``,
the record of a run and its MLflow side are ``run_record``.
"""

from __future__ import annotations

import atexit
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tracelake.lineage.layout import Layout
from tracelake.lineage.record import delta_meta, outputs
from tracelake.lineage.record.audit_store import AuditStore
from tracelake.lineage.record.audit_tables import CHECK_RESULTS, COMPONENT_RUNS, METRICS
from tracelake.lineage.record.checks import CheckResult, check_result_rows
from tracelake.lineage.record.errors import MissingInputError
from tracelake.lineage.record.errors_text import error_message, error_trace
from tracelake.lineage.record.journal import RunAlreadyFinished
from tracelake.lineage.record.listeners import RunListener, notify
from tracelake.lineage.record.mlflow_link import MlflowLink
from tracelake.lineage.record.provenance import git_state
from tracelake.lineage.record.redact import bound_text, redact_mapping, redact_record, scrub_exception, scrub_text
from tracelake.lineage.record.run import ComponentRun, OutputRecord, RunTimings
from tracelake.lineage.record.run_record import finish_mlflow_run, input_params, run_record
from tracelake.lineage.record.runid import new_run_id
from tracelake.lineage.record.tables import SchemaPolicy, WriteMode, read_version

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["Recorder", "input_params"]

log = logging.getLogger("tracelake.recorder")


class Recorder:
    """Records component runs into the audit store, the data tables and MLflow."""

    def __init__(self, *, layout: Layout, store: AuditStore, mlflow: MlflowLink,
                 spark_provider: Callable[[], SparkSession], digest_files: bool = True,
                 listeners: list[RunListener] | None = None):
        self.layout = layout
        self.listeners: list[RunListener] = listeners if listeners is not None else []
        # Final records the journal refused (full disk...), retried at the next begin and at exit.
        self.unwritten: list[tuple[str, dict[str, Any]]] = []
        # Runs whose succeeded record was refused, with the refusal: their ``fail`` names it.
        self._refused: dict[str, BaseException] = {}
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
        return outputs.partitions_at(path, version)

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

    # -- 4. output (the writes themselves: ``outputs``) --------------------------------------
    def commit_output(self, run: ComponentRun, df: DataFrame, *, table: str, mode: WriteMode,
                      schema_policy: SchemaPolicy = "strict") -> OutputRecord:
        # MLflow must exist before data lands: a committed output always has a complete link.
        run._mlflow_ids()
        return outputs.commit_output(self.spark, self.layout, run, df, table=table, mode=mode,
                                     schema_policy=schema_policy, digest_files=self.digest_files)

    def commit_quarantine(self, run: ComponentRun, df: DataFrame, *, table: str, mode: WriteMode,
                          rows: int | None = None) -> OutputRecord | None:
        """Rows that failed a quarantining test: one commit to ``table`` (see ``outputs``)."""
        return outputs.commit_quarantine(self.spark, self.layout, run, df, table=table, mode=mode, rows=rows,
                                         table_properties=self.store.table_properties())

    def roll_back(self, run: ComponentRun) -> list[str]:
        """Take a failing run's committed rows back out of its tables; returns what was done."""
        return outputs.roll_back_outputs(run)

    def commit_rejected(self, run: ComponentRun, df: DataFrame, *, table: str,
                        violations: Sequence[str]) -> OutputRecord | None:
        """A batch a blocking test refused: kept in ``table`` (see ``outputs``)."""
        return outputs.commit_rejected(self.spark, self.layout, run, df, table=table, violations=violations)

    def _check_no_concurrent_partition_write(self, path: str, run: ComponentRun, version: int,
                                            before: int | None, partitions: Sequence[str]) -> None:
        outputs.check_no_concurrent_partition_write(path, run, version, before, partitions)

    # -- 5. finish --------------------------------------------------------------------------------
    def succeed(self, run: ComponentRun) -> dict[str, Any]:
        """Record the run succeeded. If the journal refuses that record (a full or read-only
        disk), nothing is recorded: the refusal is raised and the run stays ``started``, so the
        caller rolls its commit back and records it failed with :meth:`fail` - one record, and
        never a materialisation whose record says failed."""
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

        If the journal refuses the record (a full or read-only disk): a *succeeded* record is
        raised (see :meth:`succeed`); any other is replaced by a *failed* record naming the
        refusal and the version the run's commit reached (the same fields, with the refusal as
        the error); if even that is refused, it is kept in memory and retried at the next
        ``begin`` and at process exit - and the open marker stays, so reconciliation records the
        run abandoned should the process die first.
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
        record = self._final_record(run, status, ended, error, reason, notes)
        if mlflow_ids:
            record["mlflow_experiment_id"], record["mlflow_run_id"] = mlflow_ids
            record["mlflow_run_url"] = self.mlflow.run_url(*mlflow_ids)
        t0 = time.perf_counter()
        try:
            final = self.store.journal.append(COMPONENT_RUNS, run.run_id, record, close_run=run.run_id)
        except RunAlreadyFinished:
            raise
        except Exception as exc:
            if status == "succeeded":
                # Not "failed" in its place: the commit is still visible, and a caller that got
                # an answer would report the materialisation. Its rollback and record: ``fail``.
                self._refused[run.run_id] = exc
                log.error("run %s: succeeded record refused (%s); the run is to be rolled back and "
                          "recorded failed", run.run_id, scrub_text(str(exc)))
                raise
            final = self._finish_after_refusal(run, record, exc, notes)
            status = final["status"]
        run.status = status
        notify(self.listeners, "run_finished", final)
        run.timings.add("audit_ms", t0)
        self.recent_timings.append((run.run_id, run.component, run.timings))
        if mlflow_ids and mlflow_error is None:
            self._queue_mlflow(run, status, mlflow_ids[1], record.get("error_message") if status != "succeeded" else None)
        return final

    def _final_record(self, run: ComponentRun, status: str, ended: datetime, error: BaseException | None,
                      reason: str | None, notes: Sequence[str]) -> dict[str, Any]:
        """The run's record with its end: status, times, error (and notes such as its rollback)."""
        record = self._record(run)
        record.update(status=status, ended_at=ended, duration_ms=(ended - run.started_at).total_seconds() * 1000)
        if reason:
            record["error_message"] = bound_text(reason, 4000)
        if error is not None:
            record["error_type"] = f"{type(error).__module__}.{type(error).__qualname__}"
            # A run whose succeeded record was refused fails with that refusal: say what it was.
            refused = self._refused.pop(run.run_id, None) is error
            record["error_message"] = _refusal_text(record, error) if refused else error_message(error)
            record["error_trace"] = error_trace(error)
        if notes:
            record["error_message"] = _with_notes(record.get("error_message"), notes)
        return record

    def _finish_after_refusal(self, run: ComponentRun, record: dict[str, Any], refusal: Exception,
                              notes: Sequence[str] = ()) -> dict[str, Any]:
        """The final record could not be written: record the run failed, naming why."""
        message = _refusal_text(record, refusal)
        failed = {**record, "status": "failed", "error_type": f"{type(refusal).__module__}.{type(refusal).__qualname__}",
                  "error_message": _with_notes(message, notes) if notes else message,
                  "error_trace": error_trace(refusal)[-2000:]}
        try:
            return self.store.journal.append(COMPONENT_RUNS, run.run_id, failed, close_run=run.run_id)
        except RunAlreadyFinished:
            raise
        except Exception:
            # The newest record of the run replaces any older one still waiting (a refused
            # fail, then another refused fail: the latter is what the run ended with).
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
        finish_mlflow_run(self.mlflow, run, status, mlflow_run_id, note)

    def _record(self, run: ComponentRun) -> dict[str, Any]:
        return run_record(run, self.layout)

    # -- other audit records ---------------------------------------------------------------------
    def record_checks(self, run: ComponentRun, results: Sequence[CheckResult]) -> list[dict[str, Any]]:
        rows = check_result_rows(run, results)
        recorded = self.store.journal.append_many(CHECK_RESULTS, [(str(r["check_id"]), r) for r in rows])
        notify(self.listeners, "checks_recorded", recorded)
        return recorded

    def record_metrics(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        rows = [redact_record(r) for r in rows]  # slice names and notes are text: secrets out
        return self.store.journal.append_many(METRICS, [(str(r["metric_id"]), r) for r in rows])


def _refusal_text(record: Mapping[str, Any], refusal: BaseException) -> str:
    """Why a run's final record is not the one it was meant to be, and what it had committed."""
    landed = f"; its output commit {record['output_table']}@v{record['output_version']} had landed" \
        if record.get("output_version") is not None else ""
    return f"the run's final record could not be written: {error_message(refusal)}{landed}"


def _with_notes(message: str | None, notes: Sequence[str]) -> str:
    return f"{message or ''} [{'; '.join(notes)}]"[:4000]
