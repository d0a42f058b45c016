"""Profiles through Tracelake's own Spark aggregator: each row read once, every column counted.

``jvm/tracelake/profiles/ProfileAggregator.java`` (compiled by ``install.sh`` into
``jars/lib/tracelake-profiles.jar``, which every Tracelake session loads) is a Spark
``Aggregator``: per group of rows it keeps each numeric column's bins, nulls, sum, squares about
the centre, min and max in flat arrays, and each categorical column's counts in a hash map -
what the NumPy pass does, in the JVM's generated loop. The Spark SQL way
(:mod:`spark_profiles`) needs one exploded record per (row, column) through a hash aggregation
plus a scan each for the moments and the categories; at 10M rows this is ~2.5x faster than it
(``benchmarks/drift_cost.py``).

The rows are projected exactly as for the SQL way (``_columns``: the same window, slice values,
finite doubles and text), grouped by window and slice - a sliced spec gives each row once per
slice, so it is still one aggregation - and each group's result comes back as one byte array,
decoded here into the same :class:`Profile` objects. ``available`` is False on Spark Connect
(no JVM handle in the client) or when the jar is missing; the SQL way is then used.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from tracelake.monitors.drift.profiles import ALL, Profile, ProfileSpec
from tracelake.monitors.drift.spark_profiles import _columns, _windowed, finish_profiles, group_profile

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["JAR_NAME", "available", "profile_jvm", "warn_missing"]

log = logging.getLogger("tracelake.drift")

JAR_NAME = "tracelake-profiles.jar"
_CLASS = ("tracelake", "profiles", "ProfileFunctions")
_lock = threading.Lock()
_warned: set[int] = set()       # sessions already told the aggregator is missing


def _jvm(spark: SparkSession) -> Any | None:
    """The session's JVM handle; None for Spark Connect, a client of a remote driver (it raises
    PySpark's AttributeError subclass for the handle)."""
    return getattr(spark, "_jvm", None)


def _functions(spark: SparkSession) -> Any | None:
    """The JVM's ``ProfileFunctions`` class, or None (Spark Connect, or the jar not loaded)."""
    from py4j.java_gateway import JavaClass

    found = _jvm(spark)
    if found is None:
        return None
    for part in _CLASS:
        found = getattr(found, part)
    return found if isinstance(found, JavaClass) else None


def available(spark: SparkSession) -> bool:
    """True when this session can run the aggregator (a classic session with the jar loaded)."""
    return _functions(spark) is not None


def warn_missing(spark: SparkSession) -> None:
    """Once per session: a classic session without the aggregator means an install that skipped
    it (Spark Connect never has it - its client holds no JVM - so it is not warned about)."""
    if id(spark) in _warned or _jvm(spark) is None:
        return
    _warned.add(id(spark))
    log.warning("drift profiles: %s is not loaded in this Spark session, so profiles use Spark SQL "
                "aggregations (~2.5x slower at scale); run ./install.sh to compile it into the jars folder",
                JAR_NAME)


def _java_array(spark: SparkSession, kind: str, values: list) -> Any:
    gateway: Any = spark.sparkContext._gateway
    array = gateway.new_array(getattr(gateway.jvm, kind), len(values))
    for i, value in enumerate(values):
        array[i] = value
    return array


def _register(spark: SparkSession, spec: ProfileSpec, numeric: list[int], text: list[int]) -> str:
    """The session SQL function profiling ``spec``'s columns, registered once per session; its
    name is a digest of what the aggregator is built from, so specs never share one."""
    cols = [spec.columns[j] for j in numeric]
    bounds = [c.bounds() for c in cols]
    lo, hi = [float(b[0]) for b in bounds], [float(b[1]) for b in bounds]
    bins, center = [int(c.bins) for c in cols], [float(c.center) for c in cols]
    digest = hashlib.sha256(repr((lo, hi, bins, center, len(text))).encode()).hexdigest()[:16]
    name = f"tracelake_profile_{digest}"
    with _lock:     # asked of the session itself: a new session (same Python id or not) has none
        if not spark.catalog.functionExists(name):
            functions = _functions(spark)
            if functions is None:
                raise RuntimeError(f"the drift profile aggregator ({JAR_NAME}) is not loaded in this Spark session; "
                                   "run ./install.sh, which compiles it into the jars folder every session loads")
            functions.register(spark._jsparkSession, name,
                               _java_array(spark, "double", lo), _java_array(spark, "double", hi),
                               _java_array(spark, "int", bins), _java_array(spark, "double", center), len(text))
    return name


def _decode(blob: bytes, spec: ProfileSpec, numeric: list[int], text: list[int], group: tuple[int, int, str],
            profiles: dict[tuple, Profile], extras: dict[tuple, list[tuple[str, int]]]) -> None:
    """One group's byte array (layout in ``ProfileAggregator``'s docstring) into its profiles.
    A group with no rows (a global aggregation over an empty frame) adds none, as the SQL way."""
    w, si, sv = group
    pos, found = 0, []
    for j in numeric:
        nulls, total, squares, low, high = struct.unpack_from("<qdddd", blob, pos)
        size = spec.columns[j].bins + 2
        hist = np.frombuffer(blob, dtype="<i8", count=size, offset=pos + 40).astype(np.int64)
        pos += 40 + 8 * size
        found.append((j, nulls, total, squares, low, high, hist))
    cats = []
    for j in text:
        nulls, distinct = struct.unpack_from("<qi", blob, pos)
        pos += 12
        counts = []
        for _ in range(distinct):
            n, length = struct.unpack_from("<qi", blob, pos)
            counts.append((blob[pos + 12:pos + 12 + length].decode("utf-8"), n))
            pos += 12 + length
        cats.append((j, nulls, counts))
    # every row of the group counts in every column, as a value or a null: the first one says
    rows = (found[0][1] + int(found[0][6].sum())) if found else (cats[0][1] + sum(n for _, n in cats[0][2]))
    if rows == 0:
        return
    for j, nulls, total, squares, low, high, hist in found:
        prof = group_profile(profiles, spec, j, w, si, sv)
        prof.hist += hist
        prof.nulls += int(nulls)
        prof.count += int(hist.sum())
        if hist.any():    # min/max stay at +-inf when no value is finite, as in the SQL way
            prof.sum, prof.sum_sq, prof.min, prof.max = total, squares, low, high
    for j, nulls, counts in cats:
        prof = group_profile(profiles, spec, j, w, si, sv)
        prof.nulls += int(nulls)
        known = spec.columns[j].categories
        for value, n in counts:
            prof.count += int(n)
            if value in known:
                prof.categories[value] = int(n)
            else:
                extras.setdefault(prof.key, []).append((value, int(n)))


def profile_jvm(df: DataFrame, spec: ProfileSpec) -> list[Profile]:
    """Profiles of ``df`` by the JVM aggregator: one aggregation, each row read once."""
    from pyspark.sql import functions as F

    numeric = [j for j, c in enumerate(spec.columns) if c.kind == "numeric"]
    text = [j for j, c in enumerate(spec.columns) if c.kind != "numeric"]
    if not numeric and not text:
        return []
    name = _register(df.sparkSession, spec, numeric, text)
    base = _columns(df, spec)
    keys = ["w"] if _windowed(spec) else []
    if spec.slices:
        # each row once per slice (the whole table first): still a single aggregation
        groups = [F.struct(F.lit(0).alias("si"), F.lit(ALL).alias("sv"))]
        groups += [F.struct(F.lit(i + 1).alias("si"), F.col(f"s{i}").alias("sv")) for i in range(len(spec.slices))]
        base = base.select("*", F.inline(F.array(*groups)))
        keys += ["si", "sv"]
    values = [F.col(f"v{j}") for j in numeric] + [F.col(f"k{j}") for j in text]
    profiled = F.call_function(name, *values).alias("p")
    rows = (base.groupBy(*keys).agg(profiled) if keys else base.agg(profiled)).collect()
    profiles: dict[tuple, Profile] = {}
    extras: dict[tuple, list[tuple[str, int]]] = {}
    for row in rows:
        fields = row.asDict()
        group = (int(fields.get("w", -1)), int(fields.get("si", 0)), fields.get("sv", ALL))
        _decode(bytes(row["p"]), spec, numeric, text, group, profiles, extras)
    return finish_profiles(profiles, extras, spec)
