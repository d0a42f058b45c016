"""What a run writes, and taking it back: step 6 of the lifecycle (see ``recorder``).

- :func:`commit_output`: the output as one Delta commit naming the run, found in the log and
  recorded (version, rows, files, bytes, schema hash, file digest);
- :func:`commit_quarantine` and :func:`commit_rejected`: the rows a quarantining test set aside,
  and a batch a blocking test refused, each one commit to its own table (nothing is dropped);
- :func:`check_no_concurrent_partition_write`: the first writer of a new partition wins;
- :func:`roll_back_outputs`: a failing run's committed rows taken back out (``rollback``).

Spark is asked for (``spark()``) only when a commit is written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracelake.lineage.layout import PARTITION_COLUMN, Layout
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.errors import ConcurrentPartitionWriteError, MissingInputError
from tracelake.lineage.record.errors_text import error_message
from tracelake.lineage.record.rollback import in_predicate, roll_back
from tracelake.lineage.record.run import ComponentRun, OutputRecord
from tracelake.lineage.record.tables import SchemaPolicy, WriteMode, with_reserved_columns, write_commit

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "check_no_concurrent_partition_write",
    "commit_output",
    "commit_quarantine",
    "commit_rejected",
    "partitions_at",
    "roll_back_outputs",
]

SparkProvider = Callable[[], "SparkSession"]
# A quarantine up to this many rows is committed with delta-rs from Arrow in the driver's memory;
# a bigger one (a whole feed set aside) is written by Spark, which streams it.
SMALL_QUARANTINE_ROWS = 100_000


def partitions_at(path: str, version: int) -> list[str]:
    """The ``_tl_partition`` values of a table version (a table not partitioned by it: an error)."""
    values = delta_meta.partitions_at(path, version)
    if values is None:
        raise MissingInputError(f"{path} is not partitioned by _tl_partition, so it cannot be read by partition")
    return values


def _commit_after(path: str, run_id: str, before: int | None) -> delta_meta.Commit | None:
    """The commit naming ``run_id`` among those after version ``before`` (None: a new table)."""
    return delta_meta.find_commit(path, run_id, oldest=(before + 1) if before is not None else 0)


def _side_record(table: str, path: str, version: int, rows: int | None, files: int, bytes_: int,
                 partitions: list[str] | None, mode: str) -> OutputRecord:
    """A commit to a quarantine or rejected table: no schema hash or digest is kept for it."""
    return OutputRecord(table=table, path=path, version=version, rows=rows, files=files, bytes=bytes_,
                        partitions=partitions, schema_hash="", schema_json="", content_digest="", write_mode=mode)


def commit_output(spark: SparkProvider, layout: Layout, run: ComponentRun, df: DataFrame, *, table: str,
                  mode: WriteMode, schema_policy: SchemaPolicy = "strict", digest_files: bool = True) -> OutputRecord:
    """Write the run's output as one commit and record that commit as ``run.output``."""
    path = layout.table(table)
    partitions = run.partition_keys if mode == "partition" else None
    t0 = time.perf_counter()
    before = delta_meta.latest_version(path)
    replace = True
    if mode == "partition" and partitions:
        existing = set(partitions_at(path, before)) if before is not None else set()
        replace = bool(existing & set(partitions))
    run.timings.add("lineage_ms", t0)
    user_metadata = {"tracelake_run_id": run.run_id, "component": run.component,
                     "partition": run.partition_key, "dagster_run_id": run.dagster_run_id}
    written = write_commit(spark(), path, df, run_id=run.run_id, mode=mode, partitions=partitions,
                           schema_policy=schema_policy, replace_existing=replace, user_metadata=user_metadata)
    t1 = time.perf_counter()
    commit = _commit_after(path, run.run_id, before)
    if commit is None and before is not None:
        # An empty output appended to an existing table: Spark skipped the commit.
        delta_meta.empty_commit(path, json.dumps(user_metadata, sort_keys=True))
        commit = delta_meta.find_commit(path, run.run_id, oldest=before + 1)
    if commit is None:
        raise RuntimeError(f"the write to {path} succeeded but no commit names run {run.run_id}; "
                           "was the table's log rewritten concurrently?")
    schema_hash, schema_json = delta_meta.schema_fingerprint(delta_meta.schema_at(path, commit.version))
    digest = delta_meta.files_digest(path, commit) if digest_files else ""
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
        check_no_concurrent_partition_write(path, run, commit.version, before, partitions or [])
    run.timings.add("lineage_ms", t1)
    return run.output


def commit_quarantine(spark: SparkProvider, layout: Layout, run: ComponentRun, df: DataFrame, *, table: str,
                      mode: WriteMode, rows: int | None = None,
                      table_properties: Mapping[str, str] | None = None) -> OutputRecord | None:
    """Rows that failed a quarantining test: one commit to ``table`` (nothing is dropped).

    No bad rows: nothing is written, unless an earlier run of the same partition left
    quarantined rows, which this run's (empty) quarantine then replaces. A few rows (``rows``
    counted, at most ``SMALL_QUARANTINE_ROWS``) are committed with delta-rs (see
    ``_commit_small``); more, or an uncounted batch, with Spark. ``table_properties`` are given
    to a table delta-rs creates (Spark gives its session's defaults to the tables it creates)."""
    path = layout.table(table)
    partitions = run.partition_keys if mode == "partition" else None
    before = delta_meta.latest_version(path)
    # An earlier run of the partition left quarantined rows: they are replaced. Otherwise the
    # rows are a blind append, as for the output (one Spark job, not the five replaceWhere
    # costs - most of a small daily run's quarantine commit).
    stale = before is not None and mode == "partition" and bool(
        set(delta_meta.partitions_at(path, before) or []) & set(partitions or []))
    if not stale and (rows if rows is not None else df.limit(1).count()) == 0:
        # nothing to write and nothing to replace: no commit (version -1)
        run.quarantine = _side_record(table, path, -1, 0, 0, 0, partitions, mode)
        return None
    user_metadata = {"tracelake_run_id": run.run_id, "component": run.component,
                     "partition": run.partition_key, "quarantine": True}
    if rows is not None and rows <= SMALL_QUARANTINE_ROWS:
        _commit_small(path, df, run.run_id, (partitions or []) if mode == "partition" else None, stale=stale,
                      user_metadata=user_metadata, table_properties=None if before is not None else table_properties)
    else:
        write_commit(spark(), path, df, run_id=run.run_id, mode="append" if mode == "overwrite" else mode,
                     partitions=partitions, schema_policy="merge", replace_existing=stale,
                     user_metadata=user_metadata)
    commit = _commit_after(path, run.run_id, before)
    if commit is None:
        raise RuntimeError(f"the quarantine write to {path} succeeded but no commit names run {run.run_id}")
    run.quarantine = _side_record(table, path, commit.version, commit.rows_added, len(commit.adds),
                                  commit.bytes_added, partitions, mode)
    if mode == "partition" and not stale:
        # After run.quarantine is set, so a failure here still records (and rolls back) the version.
        check_no_concurrent_partition_write(path, run, commit.version, before, partitions or [])
    return run.quarantine


def _commit_small(path: str, df: DataFrame, run_id: str, partitions: Sequence[str] | None, *, stale: bool,
                  user_metadata: dict[str, object], table_properties: Mapping[str, str] | None) -> None:
    """A few quarantined rows as one commit written by delta-rs: the rows come to the driver as
    Arrow (one Spark job over the cached batch) and delta-rs commits them in ~50 ms, where a
    Spark Delta write costs ~350 ms (p95 ~2 s when it writes a checkpoint) - most of what a
    quarantine added to a small daily run. delta-rs already writes the data tables' rollbacks
    and empty commits; the commit names the run in ``userMetadata`` as Spark's does.
    ``table_properties``: only for a table this write creates."""
    import pyarrow as pa
    from deltalake import CommitProperties, write_deltalake

    rows = with_reserved_columns(path, df, run_id, partitions).toArrow()
    # Spark marks computed columns (a literal, a range) NOT NULL. In a table with table features (a
    # timestamp_ntz column has delta-rs write one) a NOT NULL column turns on "invariants" in a
    # way Spark refuses to read: the columns are written nullable, as Spark's own writes make them.
    rows = rows.cast(pa.schema([f.with_nullable(True) for f in rows.schema]))
    common: dict[str, Any] = {
        "schema_mode": "merge", "partition_by": [PARTITION_COLUMN] if partitions is not None else None,
        "configuration": dict(table_properties) if table_properties is not None else None,
        "commit_properties": CommitProperties(custom_metadata={"userMetadata": json.dumps(user_metadata,
                                                                                        sort_keys=True)}),
    }
    if stale:  # this run's rows replace those an earlier run of the partition set aside
        write_deltalake(path, rows, mode="overwrite", **common,
                        predicate=in_predicate(PARTITION_COLUMN, partitions or ()))
    else:
        write_deltalake(path, rows, mode="append", **common)


def commit_rejected(spark: SparkProvider, layout: Layout, run: ComponentRun, df: DataFrame, *, table: str,
                    violations: Sequence[str]) -> OutputRecord | None:
    """A batch a blocking test refused: kept in ``table`` (one commit, nothing dropped).

    Each row is stored as JSON text beside the tests it failed, so a feed whose shape changed
    (the usual reason for a gate to close) can always be kept, whatever its columns are.
    """
    from pyspark.sql import functions as F

    path = layout.table(table)
    before = delta_meta.latest_version(path)
    rows = df.select(F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns])).alias("row_json"),
                     F.array(*[F.lit(v) for v in violations]).alias("_tl_violations"))
    user_metadata = {"tracelake_run_id": run.run_id, "component": run.component,
                     "partition": run.partition_key, "rejected": True}
    write_commit(spark(), path, rows, run_id=run.run_id, mode="append", schema_policy="merge",
                 user_metadata=user_metadata)
    commit = _commit_after(path, run.run_id, before)
    if commit is None:
        return None  # nothing was kept (an empty batch): the record says so
    run.rejected = _side_record(table, path, commit.version, commit.rows_added, len(commit.adds),
                                commit.bytes_added, None, "append")
    return run.rejected


def check_no_concurrent_partition_write(path: str, run: ComponentRun, version: int,
                                        before: int | None, partitions: Sequence[str]) -> None:
    """A first write of a partition is a blind append; make sure nobody else appended it too."""
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


def roll_back_outputs(run: ComponentRun) -> list[str]:
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
