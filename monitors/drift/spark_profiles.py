"""Profiles of a Spark DataFrame computed inside the JVM: one aggregation, no Python round trip.

Every row is binned with the :class:`ProfileSpec`'s fixed bins by Spark SQL expressions that do
the same IEEE double arithmetic as :func:`profiles._bins` (``floor((x - lo) / width) + 1``,
``x >= hi`` in the overflow bin, clipped to the under/overflow bins), then expanded into one
small record per (slice, column) and grouped by (window, slice, column, bin or category). Only
the groups reach the driver - a few thousand rows for a day of trips, ``columns x 258`` for a
whole table without slices - and are assembled into the same :class:`Profile` objects the pandas
path makes. Sums are added in a different order than NumPy's, so they agree to rounding
(``tests/monitors/drift/test_spark_profiles.py`` holds the two paths equal on nulls, NaN,
infinities, constant and categorical columns).

Why not ``mapInArrow``: handing every row to a Python worker as Arrow costs the JVM a row-to-Arrow
conversion and Python a decode of each batch; on two cores that was ~3.6x the single-process
NumPy bound. The aggregation stays in generated JVM code and streams Parquet once.

It also works over Spark Connect (only DataFrame expressions, no JVM handles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tracelake.monitors.drift.profiles import ALL, GRANULARITY_SECONDS, Profile, ProfileSpec, merge

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["profile_spark_sql"]

_NULL_BIN = -1      # the bin of a null or non-finite numeric value (counted as a null)


def _numeric_value(df: DataFrame, name: str) -> Column:
    """The column as a double, non-finite values (NaN, +-inf) and non-numbers as null - what
    ``profile_pandas`` does with ``pd.to_numeric(..., errors="coerce")`` and ``np.isfinite``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType

    col = F.col(f"`{name}`")
    kind = df.schema[name].dataType
    x = col.cast("double") if isinstance(kind, (NumericType, BooleanType)) else F.expr(f"try_cast(`{name}` AS DOUBLE)")
    infinite = F.abs(x) == F.lit(float("inf"))
    return F.when(F.isnan(x) | infinite, F.lit(None).cast("double")).otherwise(x)


def _text(df: DataFrame, name: str) -> Column:
    """A categorical or slice value as the text the pandas path names it by (``str(value)``)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, StringType

    col = F.col(f"`{name}`")
    kind = df.schema[name].dataType
    if isinstance(kind, StringType):
        return col
    if isinstance(kind, BooleanType):     # Python's str(True), not SQL's 'true'
        return F.when(col, F.lit("True")).when(~col, F.lit("False"))
    return col.cast("string")


def _bin(value: Column, lo: float, hi: float, bins: int) -> Column:
    """``profiles._bins`` in SQL: the same double arithmetic, so the same bin for every value."""
    from pyspark.sql import functions as F

    width = (hi - lo) / bins
    raw = F.floor((value - F.lit(lo)) / F.lit(width)) + F.lit(1)
    clipped = F.greatest(F.lit(0), F.least(F.lit(bins + 1), raw))
    return (F.when(value.isNull(), F.lit(_NULL_BIN)).when(value >= F.lit(hi), F.lit(bins + 1))
            .otherwise(clipped).cast("int"))


def _window(df: DataFrame, spec: ProfileSpec) -> Column:
    """Epoch seconds of the row's window start (floor, as the pandas path), -1 without a time."""
    from pyspark.sql import functions as F

    seconds = GRANULARITY_SECONDS.get(spec.granularity) if spec.time_column else None
    if not seconds:
        return F.lit(-1).cast("long")
    ts = F.expr(f"try_cast(`{spec.time_column}` AS TIMESTAMP)")
    micros = F.unix_micros(ts)
    step = F.lit(1_000_000 * seconds).cast("long")
    start = (micros - F.pmod(micros, step)).cast("long")
    return F.coalesce((start / step).cast("long") * F.lit(seconds), F.lit(-1).cast("long"))


def _columns(df: DataFrame, spec: ProfileSpec) -> DataFrame:
    """Each value once per row: the window, the slice values, every numeric column as a finite
    double (``v{j}``) and every categorical one as text (``k{j}``). A projection of its own, so
    the bins and squares below reuse ``v{j}`` instead of recomputing it."""
    from pyspark.sql import functions as F

    cols = [_window(df, spec).alias("w")]
    cols += [F.coalesce(_text(df, s), F.lit("null")).alias(f"s{i}") for i, s in enumerate(spec.slices)]
    for j, col in enumerate(spec.columns):
        cols.append(_numeric_value(df, col.name).alias(f"v{j}") if col.kind == "numeric"
                    else _text(df, col.name).alias(f"k{j}"))
    return df.select(*cols)


def _records(df: DataFrame, spec: ProfileSpec) -> DataFrame:
    """One record per (row, slice, column): slice index and value, column index, bin (numeric)
    or category (categorical), the value and its square about the column's centre."""
    from pyspark.sql import functions as F

    base = _columns(df, spec)
    no_text, no_value = F.lit(None).cast("string"), F.lit(None).cast("double")
    cells = []
    for j, col in enumerate(spec.columns):
        if col.kind == "numeric":
            v = F.col(f"v{j}")
            d = v - F.lit(col.center)
            lo, hi = col.bounds()
            cells.append((j, _bin(v, lo, hi, col.bins), no_text, v, d * d))
        else:
            cells.append((j, F.lit(None).cast("int"), F.col(f"k{j}"), no_value, no_value))
    if not spec.slices:   # the whole-table slice only: no slice fields, fewer and narrower keys
        structs = [F.struct(F.lit(j).alias("c"), b.alias("b"), k.alias("k"), v.alias("v"), q.alias("q"))
                   for j, b, k, v, q in cells]
        return base.select("w", F.inline(F.array(*structs))).withColumns({"si": F.lit(0), "sv": F.lit(ALL)})
    slices = [F.lit(ALL)] + [F.col(f"s{i}") for i in range(len(spec.slices))]
    structs = [F.struct(F.lit(i).alias("si"), sv.alias("sv"), F.lit(j).alias("c"), b.alias("b"), k.alias("k"),
                        v.alias("v"), q.alias("q"))
               for i, sv in enumerate(slices) for j, b, k, v, q in cells]
    return base.select("w", F.inline(F.array(*structs)))


def _aggregate(df: DataFrame, spec: ProfileSpec) -> list[Any]:
    from pyspark.sql import functions as F

    grouped = _records(df, spec).groupBy("w", "si", "sv", "c", "b", "k")
    return grouped.agg(F.count(F.lit(1)).alias("n"), F.sum("v").alias("s"), F.sum("q").alias("q"),
                       F.min("v").alias("lo"), F.max("v").alias("hi")).collect()


def _profile(cache: dict, spec: ProfileSpec, row: Any) -> Profile:
    col = spec.columns[row["c"]]
    window = None if row["w"] == -1 else int(row["w"])
    slice_key = ALL if row["si"] == 0 else spec.slices[row["si"] - 1]
    key = (col.name, window, slice_key, row["sv"])
    prof = cache.get(key)
    if prof is None:
        prof = cache[key] = Profile(col.name, col.kind, window, slice_key, row["sv"], center=col.center)
        if col.kind == "numeric":
            prof.hist = np.zeros(col.bins + 2, dtype=np.int64)
    return prof


def _assemble(rows: list[Any], spec: ProfileSpec) -> list[Profile]:
    """The grouped records as profiles; categories beyond the reference's as ``profile_pandas``
    keeps them (every known one, the ``top_k`` most frequent others, the rest in ``other``)."""
    profiles: dict[tuple, Profile] = {}
    extras: dict[tuple, list[tuple[str, int]]] = {}
    for row in rows:
        prof = _profile(profiles, spec, row)
        n = int(row["n"])
        if prof.kind == "numeric":
            if row["b"] == _NULL_BIN:
                prof.nulls += n
                continue
            prof.hist[row["b"]] += n
            prof.count += n
            prof.sum += float(row["s"])
            prof.sum_sq += float(row["q"])
            prof.min, prof.max = min(prof.min, float(row["lo"])), max(prof.max, float(row["hi"]))
        elif row["k"] is None:
            prof.nulls += n
        else:
            prof.count += n
            if row["k"] in spec.columns[row["c"]].categories:
                prof.categories[row["k"]] = n
            else:
                extras.setdefault(prof.key, []).append((row["k"], n))
    for key, found in extras.items():
        prof = profiles[key]
        found.sort(key=lambda kv: (-kv[1], kv[0]))
        prof.categories.update(found[: spec.top_k])
        prof.other += sum(n for _, n in found[spec.top_k:])
    return merge(profiles.values(), top_k=spec.top_k)


def profile_spark_sql(df: DataFrame, spec: ProfileSpec) -> list[Profile]:
    """Profiles of ``df`` in one Spark aggregation (see the module docstring)."""
    return _assemble(_aggregate(df, spec), spec)
