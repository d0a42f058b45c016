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

import contextvars
from collections import deque
import json
import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.audit_tables import CHECK_RESULTS, COMPONENT_RUNS, METRICS
from tracelake.lineage.record.audit_store import AuditStore
from tracelake.lineage.layout import Layout
from tracelake.lineage.record.mlflow_link import DatasetRef, MlflowLink, flatten_params
from tracelake.lineage.record.provenance import git_state, library_versions
from tracelake.lineage.record.redact import redact_mapping, scrub_text
from tracelake.lineage.record.runid import new_run_id
from tracelake.lineage.record.tables import SchemaPolicy, WriteMode, read_version, write_commit

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["Recorder", "ComponentRun", "OutputRecord", "current_run", "MissingInputError", "RunTimings",
           "ConcurrentPartitionWriteError"]

log = logging.getLogger("tracelake.recorder")
_current: contextvars.ContextVar["ComponentRun | None"] = contextvars.ContextVar("tracelake_current_run", default=None)
_MLFLOW_WAIT_S = 300.0


class ConcurrentPartitionWriteError(RuntimeError):
    """Two runs wrote the same new partition at the same time."""


class MissingInputError(RuntimeError):
    """An input table (or every requested partition of it) does not exist yet."""


def current_run() -> "ComponentRun":
    """The component run executing in this thread (inside a ``@component`` body)."""
    run = _current.get()
    if run is None:
        raise RuntimeError("no Tracelake component run is active here; call this inside a @component function")
    return run


@dataclass
class RunTimings:
    """Where the recorder's own time went (milliseconds), for the overhead benchmark."""

    audit_ms: float = 0.0      # journal writes
    lineage_ms: float = 0.0    # version pinning, commit lookup, digests, schema hash
    mlflow_ms: float = 0.0     # time spent waiting for MLflow on the critical path
    checks_ms: float = 0.0     # declared tests (one Spark pass) and recording their results

    def add(self, name: str, started: float) -> None:
        setattr(self, name, getattr(self, name) + (time.perf_counter() - started) * 1000)


@dataclass
class OutputRecord:
    table: str
    path: str
    version: int
    rows: int | None
    files: int
    bytes: int
    partitions: list[str] | None
    schema_hash: str
    schema_json: str
    content_digest: str
    write_mode: str
    schema: Any = None  # pyspark StructType of what was written (for Dagster metadata)


@dataclass
class ComponentRun:
    """One materialisation of one component. User code gets it as ``run`` / ``current_run()``."""

    recorder: "Recorder"
    run_id: str
    component: str
    asset_key: str
    partition_key: str | None
    partition_keys: list[str] | None
    dagster_run_id: str | None
    code_version: str | None
    source_hash: str | None
    source_path: str | None
    owner: str | None
    tags: dict[str, str]
    config: dict[str, Any]
    started_at: datetime
    lineage_keys: dict[str, list[str]] | None = None
    planned_table: str | None = None  # where the output will go; lets reconciliation find a landed commit
    inputs: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    extra_tags: dict[str, str] = field(default_factory=dict)
    output_metadata: dict[str, Any] = field(default_factory=dict)  # extra Dagster metadata (e.g. report links)
    timings: RunTimings = field(default_factory=RunTimings)
    output: OutputRecord | None = None
    quarantine: OutputRecord | None = None
    status: str = "started"
    _mlflow: Any = None  # Future[(experiment_id, run_id)]
    _token: Any = None

    # -- user API ----------------------------------------------------------------------------
    def log_metric(self, name: str, value: float) -> None:
        self.metrics[str(name)] = float(value)

    def log_metrics(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.log_metric(k, v)

    def log_window_metrics(self, rows: Sequence[Mapping[str, Any]], *, component: str | None = None,
                           source: str = "component") -> None:
        """Metrics over a time window and slice (e.g. recall of one day's predictions for one
        zone), chained into ``audit.metrics`` with this run's id. ``component`` names what the
        metric is about when it is not this component (an evaluation scores the predictions)."""
        now = datetime.now(timezone.utc)
        self.recorder.record_metrics([{
            "metric_id": new_run_id(), "run_id": self.run_id, "component": component or self.component,
            "partition_key": self.partition_key, "source": source, "computed_at": now, **dict(r)} for r in rows])

    def set_tag(self, key: str, value: Any) -> None:
        self.extra_tags[str(key)] = scrub_text(str(value))

    @property
    def spark(self) -> "SparkSession":
        return self.recorder.spark()

    def _mlflow_ids(self) -> tuple[str, str]:
        started = time.perf_counter()
        try:
            return self._mlflow.result(timeout=_MLFLOW_WAIT_S)
        finally:
            self.timings.add("mlflow_ms", started)

    @property
    def mlflow_run_id(self) -> str:
        return self._mlflow_ids()[1]

    @property
    def mlflow_run_url(self) -> str:
        exp_id, run_id = self._mlflow_ids()
        return self.recorder.mlflow.run_url(exp_id, run_id)

    def read_table(self, name: str, *, partitions: Sequence[str] | None = None, version: int | None = None,
                   path: str | None = None) -> "DataFrame":
        """Read another lakehouse table, pinned and recorded as an input of this run."""
        return self.recorder.read_input(self, name, partitions=partitions, version=version, path=path)

    def log_model(self, model: Any, registered_name: str, *, flavor: str = "sklearn",
                  input_example: Any = None, **kwargs: Any) -> dict[str, str]:
        """Log ``model`` into this run's MLflow run and register it; the version is recorded."""
        import mlflow

        link = self.recorder.mlflow
        mlflow.set_tracking_uri(link.tracking_uri)
        mlflow.set_registry_uri(link.tracking_uri)
        flavor_module = getattr(mlflow, flavor)
        with mlflow.start_run(run_id=self.mlflow_run_id):
            info = flavor_module.log_model(model, name="model", registered_model_name=registered_name,
                                           input_example=input_example, **kwargs)
        version = str(info.registered_model_version)
        ref = {"role": "registered", "name": registered_name, "version": version,
               "uri": f"models:/{registered_name}/{version}", "mlflow_run_id": self.mlflow_run_id}
        self.models.append(ref)
        return ref

    def load_model(self, name: str, version: str | int, *, flavor: str = "sklearn") -> Any:
        """Load a registered model version; the version (and its MLflow run) is recorded as an input."""
        return self.recorder.load_model(self, name, str(version), flavor=flavor)

    # -- used by the decorator ------------------------------------------------------------------
    def activate(self) -> None:
        self._token = _current.set(self)

    def deactivate(self) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


class Recorder:
    """Records component runs into the audit store, the data tables and MLflow."""

    def __init__(self, *, layout: Layout, store: AuditStore, mlflow: MlflowLink,
                 spark_provider: Callable[[], "SparkSession"], digest_files: bool = True):
        self.layout = layout
        self.store = store
        self.mlflow = mlflow
        self._spark_provider = spark_provider
        self.digest_files = digest_files
        # The recorder's own cost per finished run, newest last (benchmarks, debugging overhead).
        self.recent_timings: deque[tuple[str, str, RunTimings]] = deque(maxlen=1000)

    def spark(self) -> "SparkSession":
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
    ) -> ComponentRun:
        t0 = time.perf_counter()
        run = ComponentRun(
            recorder=self, run_id=new_run_id(), component=component, asset_key=asset_key,
            partition_key=partition_key, partition_keys=list(partition_keys) if partition_keys else None,
            dagster_run_id=dagster_run_id, code_version=code_version, source_hash=source_hash,
            source_path=source_path, owner=owner, tags=dict(tags or {}),
            config=redact_mapping(dict(config or {})), started_at=datetime.now(timezone.utc),
            lineage_keys={k: list(v) for k, v in lineage_keys.items()} if lineage_keys else None,
            planned_table=output_table,
        )
        self.store.journal.open_run(run.run_id, self._record(run))
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
                   allow_missing_partitions: bool = True) -> "DataFrame":
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
    def commit_output(self, run: ComponentRun, df: "DataFrame", *, table: str, mode: WriteMode,
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
            schema=written.schema,
        )
        if mode == "partition" and not replace:
            # After run.output is set, so a failure here still records the version that landed.
            self._check_no_concurrent_partition_write(path, run, commit.version, before, partitions)
        run.timings.add("lineage_ms", t1)
        return run.output

    def commit_quarantine(self, run: ComponentRun, df: "DataFrame", *, table: str, mode: WriteMode,
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
            if not stale:
                run.quarantine = OutputRecord(table=table, path=path, version=before if before is not None else -1,
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
                    f"partition(s) {sorted(touched & wanted)} of {path} were also written by run "
                    f"{other.user_metadata.get('tracelake_run_id', '?')} (version {v}) while run {run.run_id} "
                    f"wrote version {version}; both sets of rows are in the table now - re-run one "
                    "materialisation of that partition to replace them"
                )

    # -- 5. finish --------------------------------------------------------------------------------
    def succeed(self, run: ComponentRun) -> dict[str, Any]:
        return self._finish(run, "succeeded")

    def skip(self, run: ComponentRun, reason: str) -> dict[str, Any]:
        run.set_tag("tracelake.skip_reason", reason)
        return self._finish(run, "skipped", error=None, reason=reason)

    def fail(self, run: ComponentRun, exc: BaseException, *, abandoned: bool = False) -> dict[str, Any]:
        return self._finish(run, "abandoned" if abandoned else "failed", error=exc)

    def _finish(self, run: ComponentRun, status: str, error: BaseException | None = None,
                reason: str | None = None) -> dict[str, Any]:
        run.status = status
        ended = datetime.now(timezone.utc)
        mlflow_ids: tuple[str, str] | None = None
        mlflow_error: BaseException | None = None
        try:
            mlflow_ids = run._mlflow_ids()
        except BaseException as exc:  # the audit record must still be written; the error is recorded
            mlflow_error = exc
            if error is None:
                error, status = exc, "failed"
                run.status = status
        record = self._record(run)
        record.update(status=status, ended_at=ended,
                      duration_ms=(ended - run.started_at).total_seconds() * 1000)
        if reason:
            record["error_message"] = scrub_text(reason)
        if error is not None:
            record["error_type"] = f"{type(error).__module__}.{type(error).__qualname__}"
            record["error_message"] = scrub_text(str(error))[:4000]
            record["error_trace"] = scrub_text("".join(traceback.format_exception(error)))[-16000:]
        if mlflow_ids:
            record["mlflow_experiment_id"], record["mlflow_run_id"] = mlflow_ids
            record["mlflow_run_url"] = self.mlflow.run_url(*mlflow_ids)
        t0 = time.perf_counter()
        final = self.store.journal.append(COMPONENT_RUNS, run.run_id, record, close_run=run.run_id)
        run.timings.add("audit_ms", t0)
        self.recent_timings.append((run.run_id, run.component, run.timings))
        if mlflow_ids and mlflow_error is None:
            self._queue_mlflow(run, status, mlflow_ids[1])
        return final

    def _queue_mlflow(self, run: ComponentRun, status: str, mlflow_run_id: str) -> None:
        datasets = [DatasetRef(i["name"], i["path"], i["version"], "training" if run.models and any(m["role"] == "registered" for m in run.models) else "input")
                    for i in run.inputs if i["kind"] == "table"]
        if run.output is not None:
            datasets.append(DatasetRef(run.output.table, run.output.path, run.output.version, "output",
                                       digest=run.output.content_digest[:16] or None))
        tags = {**run.extra_tags, "tracelake.status": status}
        if run.output is not None:
            tags.update({"tracelake.output": f"{run.output.table}@v{run.output.version}",
                         "tracelake.output_rows": str(run.output.rows)})
        self.mlflow.finish_run(mlflow_run_id, status=status, params=flatten_params(run.config),
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
            "tags": {**run.tags, **run.extra_tags},
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
            "write_mode": out.write_mode if out else None,
            "quarantine_table": run.quarantine.table if run.quarantine else None,
            "quarantine_version": run.quarantine.version if run.quarantine and run.quarantine.files else None,
            "quarantined_rows": run.quarantine.rows if run.quarantine else None,
            "models": run.models,
            "metrics": run.metrics,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }

    # -- other audit records ---------------------------------------------------------------------
    def record_checks(self, results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return self.store.journal.append_many(CHECK_RESULTS, [(str(r["check_id"]), r) for r in results])

    def record_metrics(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return self.store.journal.append_many(METRICS, [(str(r["metric_id"]), r) for r in rows])
