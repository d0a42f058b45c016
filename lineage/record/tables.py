"""Reading and writing data tables with Spark: pinned-version reads, one-commit writes.

Every write is exactly one Delta commit whose ``userMetadata`` names the component run, and
every row carries the run id in ``_tl_run_id``; partitioned assets also carry their Dagster
partition key in ``_tl_partition`` (the physical partition column), so a re-run of a partition
replaces exactly that partition (``replaceWhere``) in the same single commit.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from tracelake.lineage.layout import PARTITION_COLUMN, RESERVED_COLUMNS, RUN_ID_COLUMN

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SchemaPolicy", "TableWriteError", "WriteMode", "fast_pinned_reads", "read_version", "sql_literal",
           "with_reserved_columns", "write_commit"]

log = logging.getLogger("tracelake.tables")

WriteMode = Literal["partition", "append", "overwrite"]
SchemaPolicy = Literal["strict", "merge"]

_RETRYABLE = ("ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
              "ConcurrentTransactionException", "ProtocolChangedException", "MetadataChangedException",
              "DELTA_CONCURRENT")


class TableWriteError(RuntimeError):
    """A write was refused (schema mismatch, bad partition values ...); nothing was committed."""


def sql_literal(value: str) -> str:
    """A Spark SQL string literal (backslash escapes, Spark's default parser)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def read_version(spark: SparkSession, path: str, version: int, partitions: Sequence[str] | None = None,
                 keep_reserved: bool = False) -> DataFrame:
    """The table exactly as of ``version`` (optionally only some partitions)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from tracelake.lineage.record.delta_meta import pinned_files

    pinned = pinned_files(path, int(version), partitions) if fast_pinned_reads() else None
    if pinned is not None and len(pinned.files) > _FAST_READ_MAX_FILES:
        pinned = None  # many files: Spark's Delta reader (stats, parallel scan) beats a file list
    if pinned is not None:
        schema = StructType.fromJson(json.loads(pinned.schema_json))
        if pinned.files:
            df = spark.read.schema(schema).option("basePath", path).parquet(*pinned.files)
            df = df.select(*schema.fieldNames())  # Delta's column order, partition column included
        else:
            df = spark.createDataFrame([], schema)
        if not keep_reserved:
            df = df.drop(*[c for c in RESERVED_COLUMNS if c in df.columns])
        return df
    df = spark.read.format("delta").option("versionAsOf", int(version)).load(path)
    if partitions is not None:
        if PARTITION_COLUMN not in df.columns:
            raise TableWriteError(f"{path} is not partitioned, but partitions {list(partitions)[:3]}... were asked for")
        df = df.where(F.col(PARTITION_COLUMN).isin(list(partitions)))
    if not keep_reserved:
        df = df.drop(*[c for c in RESERVED_COLUMNS if c in df.columns])
    return df


_FAST_READ_MAX_FILES = 256


def fast_pinned_reads() -> bool:
    """``TRACELAKE_FAST_PINNED_READS=0`` forces every pinned read through Spark's Delta reader."""
    return os.environ.get("TRACELAKE_FAST_PINNED_READS", "1") not in ("0", "false", "no")


def _is_retryable(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return any(marker in text for marker in _RETRYABLE)


def write_commit(
    spark: SparkSession,
    path: str,
    df: DataFrame,
    *,
    run_id: str,
    user_metadata: dict[str, Any],
    mode: WriteMode,
    partitions: Sequence[str] | None = None,
    schema_policy: SchemaPolicy = "strict",
    replace_existing: bool = True,
    max_attempts: int = 8,
) -> DataFrame:
    """Write ``df`` as one Delta commit; returns the DataFrame as written (with reserved columns).

    ``replace_existing=False`` (the partitions are known to be absent) writes a partition as a
    blind append: one Spark job instead of five, because ``replaceWhere`` makes Delta rebuild the
    table state to find files to remove. Callers must check afterwards that no other writer
    added the same partition in between (``recorder`` does).

    Concurrent writers are handled by Delta's optimistic concurrency: a conflicting commit is
    retried (blind appends and writes to different partitions never conflict).
    """
    out = with_reserved_columns(path, df, run_id, (partitions or []) if mode == "partition" else None)
    writer_opts: dict[str, str] = {"userMetadata": json.dumps(user_metadata, sort_keys=True)}
    if schema_policy == "merge":
        writer_opts["mergeSchema"] = "true"
    spark_mode = _spark_mode(path, mode, schema_policy, partitions, replace_existing, writer_opts)
    _save_retrying(path, out, spark_mode, writer_opts, partitioned=mode == "partition", max_attempts=max_attempts)
    return out


def with_reserved_columns(path: str, df: DataFrame, run_id: str, partitions: Sequence[str] | None) -> DataFrame:
    """The rows as written: each names its run in ``_tl_run_id`` and, in a partition write
    (``partitions`` given), its partition in ``_tl_partition`` - the run's one partition, or (a
    run covering several) the column the output must already carry."""
    from pyspark.sql import functions as F

    if RUN_ID_COLUMN in df.columns:
        df = df.drop(RUN_ID_COLUMN)
    out = df.withColumn(RUN_ID_COLUMN, F.lit(run_id))
    if partitions is None:
        return out
    if not partitions:
        raise TableWriteError(f"{path}: a partition write needs the partition key(s) of the run")
    if PARTITION_COLUMN in out.columns:
        if len(partitions) == 1:
            out = out.withColumn(PARTITION_COLUMN, F.lit(partitions[0]))
        return out
    if len(partitions) != 1:
        raise TableWriteError(
            f"{path}: this run covers {len(partitions)} partitions; the output must say which "
            f"partition each row belongs to in a `{PARTITION_COLUMN}` column"
        )
    return out.withColumn(PARTITION_COLUMN, F.lit(partitions[0]))


def _spark_mode(path: str, mode: WriteMode, schema_policy: SchemaPolicy, partitions: Sequence[str] | None,
                replace_existing: bool, writer_opts: dict[str, str]) -> str:
    """Spark's save mode for a write mode; adds to ``writer_opts`` the options it needs."""
    if mode == "partition":
        if not replace_existing:
            return "append"
        predicate = f"{PARTITION_COLUMN} IN ({', '.join(sql_literal(p) for p in partitions or ())})"
        writer_opts["replaceWhere"] = predicate
        return "overwrite"
    if mode == "append":
        return "append"
    if mode == "overwrite":
        if schema_policy == "merge":
            writer_opts["overwriteSchema"] = "true"
            writer_opts.pop("mergeSchema", None)
        return "overwrite"
    raise TableWriteError(f"unknown write mode {mode!r}; use partition, append or overwrite")


def _save_retrying(path: str, out: DataFrame, spark_mode: str, writer_opts: dict[str, str], *,
                   partitioned: bool, max_attempts: int) -> None:
    """Save, retrying a commit that lost a race with another writer (with jittered backoff)."""
    for attempt in range(1, max_attempts + 1):
        writer = out.write.format("delta").mode(spark_mode)
        for key, value in writer_opts.items():
            writer = writer.option(key, value)
        if partitioned:
            writer = writer.partitionBy(PARTITION_COLUMN)
        try:
            writer.save(path)
            return
        except Exception as exc:  # classified below; anything not retryable is re-raised as is
            if not _is_retryable(exc) or attempt == max_attempts:
                schema_error = _schema_mismatch(path, exc)
                if schema_error is not None:
                    raise schema_error from exc
                raise
            delay = min(2.0, 0.05 * 2 ** attempt) * (0.5 + random.random())
            log.warning("concurrent commit on %s (attempt %d/%d), retrying in %.2fs", path, attempt, max_attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _schema_mismatch(path: str, exc: Exception) -> TableWriteError | None:
    """A failed save that was a schema mismatch, said with what to do about it (else None)."""
    text = str(exc)
    if "DELTA_FAILED_TO_MERGE_FIELDS" in text or "schema mismatch" in text.lower() or "DELTA_SCHEMA" in text:
        return TableWriteError(
            f"{path}: the output's schema does not match the table's ({_first_line(exc)}); "
            "fix the component, or declare schema_evolution='merge' if the change is intended"
        )
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
