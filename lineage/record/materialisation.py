"""One materialisation of one component, start to finish, in the order things happen:

1. **open the record** - an open marker is durable in the journal before any work, and MLflow
   run creation starts in the background;
2. **pin and read the inputs** - each upstream table at the Delta version that is newest now,
   read *at that version* (the recorded version is the version read);
3. **run the function** - the user's transform, with the run for metrics and models;
4. **split the quarantine** - rows failing a quarantining test are set aside, not dropped;
5. **evaluate the declared tests** - on the rows about to be written, in one Spark pass that
   also counts the quarantine, and journal every result;
6. **write one commit** - or, when a *blocking* test failed, write nothing to the table: the batch
   is kept in ``<table>__rejected`` for inspection and the run fails (write-audit-publish: a
   gate that failed never leaves its rows visible to readers);
7. **finish the record** - succeeded, failed, skipped (nothing to do) or abandoned (interrupted);
8. **emit the Dagster events** - the materialisation (Delta version, rows, schema, MLflow link,
   the command that shows the record) with the asset check results.

A process killed anywhere leaves the open marker; reconciliation records it as abandoned.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from tracelake.lineage.plan_size import in_one_task_if_small
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.checks import CheckContext, CheckResult, evaluate_checks, evaluate_checks_marked
from tracelake.lineage.record.config_record import describe_config
from tracelake.lineage.record.dagster_events import check_events, materialize_result
from tracelake.lineage.record.errors import BlockingCheckFailed, MissingInputError
from tracelake.lineage.record.failpoints import failpoint
from tracelake.lineage.record.quarantine_marks import mark_quarantine, quarantine_counts, quarantine_rules, split_marked
from tracelake.lineage.record.redact import scrub_text
from tracelake.lineage.record.run import ComponentRun
from tracelake.lineage.record.spec import ComponentSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["Materialisation"]


class _Skip(Exception):
    """Nothing to do for this run (an input has no data yet, or the function returned None)."""


@dataclass
class _Batch:
    """What the run is about to write: the rows for the table, and the rows set aside."""

    frame: DataFrame
    produced: list[tuple[str, str]]          # (column, type) as the function produced them
    rows: int | None = None                  # None until a job has counted them
    quarantine: DataFrame | None = None
    quarantined: int = 0
    marked: DataFrame | None = None          # every row, with the quarantining tests it fails
    source: DataFrame | None = None          # the function's rows, before marking
    by_rule: dict[str, int] = field(default_factory=dict)
    cached: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()


class Materialisation:
    """Runs one materialisation; ``run()`` yields the Dagster events (see the module docstring)."""

    def __init__(self, spec: ComponentSpec, context: dg.AssetExecutionContext, config: Any):
        self.spec = spec
        self.context = context
        self.config = config
        self.lake = context.resources.lakehouse.open()
        self.recorder = self.lake.recorder
        self.partition_keys = _partition_keys(context)

    def run(self) -> Iterator[Any]:
        run = self.open_record()
        run.activate()
        batch: _Batch | None = None
        results: list[CheckResult] = []
        gates: list[CheckResult] = []
        failure: dg.Failure | None = None
        try:
            failpoint("after_open", run_id=run.run_id)
            inputs = self.read_inputs(run)
            failpoint("after_inputs", run_id=run.run_id)
            batch = self.prepare_batch(run, self.call_function(run, inputs))
            failpoint("after_function", run_id=run.run_id)
            results = self.evaluate_checks(run, batch)
            gates = [r for r in results if r.blocking and not r.passed]
            if gates:
                failure = self.reject(run, batch, gates)
            else:
                failpoint("before_commit", run_id=run.run_id)
                self.commit(run, batch)
                failpoint("after_commit", run_id=run.run_id)
                self.recorder.succeed(run)
                failpoint("after_final", run_id=run.run_id)
        except _Skip as skip:
            self.recorder.skip(run, str(skip))
            self.context.log.warning(f"{self.spec.name}: skipped ({scrub_text(str(skip))}); recorded run {run.run_id}")
            return
        except BaseException as exc:
            if run.status == "started":
                # A commit that landed before the failure must not stay visible to readers.
                notes = self.recorder.roll_back(run) if run.output is not None or run.quarantine is not None else []
                for note in notes:
                    self.context.log.warning(f"{self.spec.name}: {note}")
                # Exceptions are failures; interrupts (run termination, Ctrl-C) are abandonment.
                self.recorder.fail(run, exc, abandoned=not isinstance(exc, Exception), notes=notes)
            raise
        finally:
            run.deactivate()
            if batch is not None:
                batch.release()
        if failure is not None:
            yield from check_events(self.context, self.spec, results, run.run_id)
            raise failure
        yield materialize_result(self.context, self.spec, run, results)

    # -- 1 -------------------------------------------------------------------------------------
    def open_record(self) -> ComponentRun:
        spec, context = self.spec, self.context
        keys = self.partition_keys
        partition_key = context.partition_key if context.has_partition_key else (
            f"{keys[0]}...{keys[-1]}" if keys else None)
        resources = {name: getattr(context.resources, name) for name in spec.params.resources}
        return self.recorder.begin(
            component=spec.name, asset_key=spec.key.to_user_string(), partition_key=partition_key,
            partition_keys=keys, dagster_run_id=context.run_id, code_version=spec.code_version,
            source_hash=spec.source_hash, source_path=spec.source_path, owner=spec.owner, tags=dict(spec.tags),
            config=describe_config(self.config, resources), lineage_keys=spec.lineage_keys, output_table=spec.table,
            write_mode=spec.write_mode,
        )

    # -- 2 -------------------------------------------------------------------------------------
    def read_inputs(self, run: ComponentRun) -> dict[str, DataFrame]:
        frames = {}
        for param, key in self.spec.inputs.items():
            partitions = (list(self.context.asset_partition_keys_for_input(key.to_python_identifier()))
                          if self.partition_keys is not None else None)
            try:
                frames[param] = self.recorder.read_input(run, self.spec.input_table(param), partitions=partitions,
                                                         whole_if_unpartitioned=True)
            except MissingInputError as exc:
                if self.spec.skips_when_missing(param):
                    raise _Skip(f"input {param} has no data: {exc}") from None
                raise
        return frames

    # -- 3 -------------------------------------------------------------------------------------
    def call_function(self, run: ComponentRun, inputs: dict[str, DataFrame]) -> Any:
        params = self.spec.params
        call: dict[str, Any] = dict(inputs)
        if params.run:
            call[params.run] = run
        for name in params.resources:
            call[name] = getattr(self.context.resources, name)
        if params.config_type is not None:
            call["config"] = self.config
        result = self.spec.fn(self.context, **call) if params.wants_context else self.spec.fn(**call)
        if hasattr(result, "__next__"):
            raise TypeError(f"@component {self.spec.name} must return a DataFrame, not yield")
        if result is None:
            if not self.spec.optional_output:
                raise TypeError(f"@component {self.spec.name} returned None; return a DataFrame, or declare "
                                "optional_output=True if a run may legitimately produce nothing")
            raise _Skip("the component produced no output")
        return result

    # -- 4 -------------------------------------------------------------------------------------
    def prepare_batch(self, run: ComponentRun, result: Any) -> _Batch:
        df = _to_spark(result, self.lake.spark, self.spec.name)
        wanted = {key.split("=")[0] for keys in (self.spec.lineage_keys or {}).values() for key in keys}
        missing = sorted(wanted - set(df.columns))
        if missing:
            raise ValueError(f"@component {self.spec.name} declares lineage key column(s) {missing} that its "
                             f"output does not have (columns: {df.columns}); fix lineage_keys")
        produced = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
        if not self.spec.checks and not self.spec.quarantines:
            # Nothing reads the rows before the commit: no cache and no count (the record takes the
            # row count from the commit's statistics) - one Spark job and a cache fewer per run.
            return _Batch(df, produced)
        # Cached once: the tests, the quarantine split and the commit all read the same rows. No
        # count of its own: the tests' single pass counts the rows (and the quarantine's) and
        # fills the cache - a Spark job fewer per run (~0.1-0.3 s on a day's rows). A small batch
        # is one partition, so that job and the window of a uniqueness quarantine need no shuffle.
        batch = _Batch(in_one_task_if_small(df), produced)
        if self.spec.quarantines and self._mark_quarantine(batch):
            return batch
        batch.frame = batch.frame.persist()
        batch.cached = [batch.frame]
        return batch

    def _mark_quarantine(self, batch: _Batch) -> bool:
        """Mark each row with the quarantining tests it fails, once: the marked rows are what is
        cached, so a test that needs a window (uniqueness keeps a key's first row) is evaluated
        once, not again by the tests and each of the two commits. They are counted with the tests
        (``evaluate_checks``). True: the batch is ready - split, or, when a rule cannot be
        evaluated, cached and counted unsplit (logged); False: no rule to mark."""
        try:
            marked = mark_quarantine(self.spec.checks, batch.frame)
        except Exception as exc:  # a rule names a column the output lacks (a schema break)
            self._unsplit(batch, batch.frame, exc)
            return True
        if marked is None:
            return False
        batch.source, batch.marked = batch.frame, marked.persist()
        batch.cached = [batch.marked]
        batch.frame, batch.quarantine = split_marked(batch.marked)
        return True

    def _count_quarantine(self, batch: _Batch) -> None:
        """Count a marked batch on its own (when the tests could not count it in their pass)."""
        assert batch.marked is not None and batch.source is not None
        try:
            total, batch.quarantined, batch.by_rule = quarantine_counts(batch.marked, self._rules())
        except Exception as exc:  # a rule's expression fails on these rows, or they cannot be computed
            batch.marked.unpersist()
            batch.marked, batch.quarantine = None, None
            self._unsplit(batch, batch.source, exc)
            return
        batch.rows = total - batch.quarantined

    def _unsplit(self, batch: _Batch, frame: DataFrame, exc: Exception) -> None:
        """A quarantining rule cannot be evaluated on these rows: keep them all (tested, committed
        unsplit) and say so. If the function's rows cannot be computed at all, the count raises
        that error - the run's own, as it would have been without any quarantine."""
        batch.frame = frame.persist()
        try:
            batch.rows = batch.frame.count()
        except BaseException:
            batch.frame.unpersist()   # the run never gets this batch to release it
            raise
        batch.cached = [batch.frame]
        self.context.log.error(f"{self.spec.name}: rows not quarantined, a rule cannot be evaluated: "
                               f"{scrub_text(str(exc))}")

    def _rules(self) -> list[str]:
        return [name for name, _ in quarantine_rules(self.spec.checks)]

    # -- 5 -------------------------------------------------------------------------------------
    def evaluate_checks(self, run: ComponentRun, batch: _Batch) -> list[CheckResult]:
        started = time.perf_counter()
        results = None
        if batch.marked is not None and batch.rows is None:
            # The quarantine's counts and the tests' aggregates in one job.
            ctx = CheckContext(run, self.lake, batch.frame, None, produced_schema=batch.produced)
            judged = evaluate_checks_marked(self.spec.checks, ctx, batch.marked, self._rules())
            if judged is None:
                self._count_quarantine(batch)
            else:
                results, counts = judged
                batch.rows, batch.quarantined, batch.by_rule = ctx.rows, counts.quarantined, counts.by_rule
        if not self.spec.checks:
            return []
        if results is None:
            ctx = CheckContext(run, self.lake, batch.frame, batch.rows, batch.quarantined, batch.produced,
                               batch.by_rule)
            results = evaluate_checks(self.spec.checks, ctx)
            batch.rows = ctx.rows   # counted by the tests' pass when nothing had counted them before
        self.recorder.record_checks(run, results)
        run.timings.add("checks_ms", started)
        return results

    # -- 6 -------------------------------------------------------------------------------------
    def commit(self, run: ComponentRun, batch: _Batch) -> None:
        spec = self.spec
        path = self.lake.layout.table(spec.table)
        base = delta_meta.latest_version(path)
        # One Spark driver commits to a table at a time (journal.table_lock: object stores). A
        # run that waited there for another run's commit to its own partition loses (first wins).
        with self.lake.journal.table_lock(path):
            if batch.quarantine is not None:
                self.recorder.commit_quarantine(run, batch.quarantine, table=f"{spec.table}__quarantine",
                                                mode=spec.write_mode, rows=batch.quarantined)
            out = self.recorder.commit_output(run, batch.frame, table=spec.table, mode=spec.write_mode,
                                              schema_policy=spec.schema_policy)
            if spec.write_mode == "partition" and run.partition_keys:
                self.recorder._check_no_concurrent_partition_write(path, run, out.version, base, run.partition_keys)

    def reject(self, run: ComponentRun, batch: _Batch, gates: list[CheckResult]) -> dg.Failure:
        """A blocking test failed: keep the batch aside, commit nothing, fail the run."""
        names = ", ".join(r.name for r in gates)
        reason = "; ".join(f"{r.name}: {r.observed_text or r.observed_value}" for r in gates)
        frame = batch.frame if batch.quarantine is None else batch.frame.unionByName(
            batch.quarantine.drop("_tl_violations"), allowMissingColumns=True)
        kept = self.recorder.commit_rejected(run, frame, table=f"{self.spec.table}__rejected",
                                             violations=[r.name for r in gates])
        where = f"; the {kept.rows} rows are kept in {kept.table}@v{kept.version}" if kept else ""
        error = BlockingCheckFailed(f"blocking test(s) {names} failed, nothing was written to {self.spec.table}"
                                    f"{where}: {reason}")
        self.recorder.fail(run, error)
        return dg.Failure(description=str(error), metadata={"tracelake_run_id": run.run_id,
                                                            "failed_tests": names})


def _partition_keys(context: dg.AssetExecutionContext) -> list[str] | None:
    if context.has_partition_key:
        return [context.partition_key]
    if context.has_partition_key_range:
        return list(context.partition_keys)
    return None


def _empty_schema(frame: Any) -> Any:
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StringType, StructField, StructType

    arrow = pa.Schema.from_pandas(frame, preserve_index=False)
    return StructType([StructField(f.name, StringType() if pa.types.is_null(f.type) else from_arrow_type(f.type), True)
                       for f in arrow])


def _to_spark(value: Any, spark_provider: Any, name: str) -> DataFrame:
    from pyspark.sql import DataFrame as SparkDataFrame

    if isinstance(value, SparkDataFrame):
        return value
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        if value.empty:
            # An empty frame has no values to infer types from (Spark refuses it): take them from
            # its dtypes, untyped columns as text, so an empty batch is judged, not crashed on.
            return spark_provider().createDataFrame([], _empty_schema(value))
        return spark_provider().createDataFrame(value)
    raise TypeError(f"@component {name} must return a Spark or pandas DataFrame (or None when "
                    f"optional_output=True), got {type(value).__name__}")
