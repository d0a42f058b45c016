"""Spark's own estimate of a frame's size, read from its plan without running a job.

Used where the cheapest way to compute something depends on the input's size (drift profiles
without the JVM aggregator; key-grouping test aggregates; a small batch in one task): Spark knows
a file scan's size from the files, and a cached or local relation's from memory, before anything
runs.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["SINGLE_TASK_BELOW_BYTES", "estimated_bytes", "in_one_task_if_small", "larger_than"]

# Measured on 2 cores (tests' pass + commit of a cached batch): one task wins below ~2-4 MB by
# Spark's estimate (2,000 rows: 330-360 ms instead of 470-590; 50,000 rows, 1.2 MB: 370 instead
# of 440-480) and loses above (4.8 MB: 610-650 instead of 530-560; 20 MB: 1.9 s instead of 1.3).
SINGLE_TASK_BELOW_BYTES = 2 * 1024 * 1024


def estimated_bytes(df: DataFrame) -> float | None:
    """Spark's estimate of the frame's size - for a file scan, the files' total - from the
    optimized plan's statistics (no job runs); None when the plan does not say. A classic
    session asks the JVM directly (~1 ms); Spark Connect reads ``EXPLAIN COST`` (~30-60 ms:
    a temporary view and a parsed statement)."""
    jdf = getattr(df, "_jdf", None)      # Spark Connect frames have no JVM handle
    if jdf is not None:
        return float(str(jdf.queryExecution().optimizedPlan().stats().sizeInBytes()))
    return _explained_bytes(df)


def _explained_bytes(df: DataFrame) -> float | None:
    spark = df.sparkSession
    view = f"_tl_sized_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(view)
    try:
        plan = spark.sql(f"EXPLAIN COST SELECT * FROM {view}").collect()[0][0]
    finally:
        spark.catalog.dropTempView(view)
    found = re.search(r"sizeInBytes=([\d.]+)\s*([KMGTPE]?)i?B", plan)
    if not found:
        return None
    return float(found.group(1)) * 1024 ** " KMGTPE".index(found.group(2) or " ")


def in_one_task_if_small(df: DataFrame) -> DataFrame:
    """``df`` as one partition when Spark estimates it below ``SINGLE_TASK_BELOW_BYTES``, else
    ``df`` itself. On a day's rows every job's fixed costs dominate: one partition satisfies any
    grouping a later step needs (a global aggregate, a distinct key count, a window by key), so
    Spark plans those jobs without a shuffle - one stage, one task - and the commit writes one
    file instead of several small ones. Only the last stage of the function's own plan runs in
    one task (a coalesce does not cross a shuffle); an estimate Spark does not have keeps ``df``."""
    return df if larger_than(df, SINGLE_TASK_BELOW_BYTES) else df.coalesce(1)


def larger_than(df: DataFrame, limit_bytes: float) -> bool:
    """Spark estimates ``df`` above ``limit_bytes`` - or has no estimate (a frame made from
    Python rows through an RDD reports none usable), which every caller must treat as large:
    the way chosen for a small input is the one that would be slow on a large one."""
    size = estimated_bytes(df)
    return size is None or size > limit_bytes
