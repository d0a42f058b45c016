"""Which data files could hold a keyed hop's keys, from the per-file statistics in the Delta log.

Every Delta add action carries its file's row count and each column's min and max (Spark and
delta-rs both write them). A keyed hop - "the rows of these runs whose ``model_version`` is one
of these" - can skip a file whose range for a key column holds none of the values looked for,
which is how Delta's own data skipping answers a query. It matters where many runs read one
table but each wrote only some keys: every hourly prediction run read the model registry, so
the hop from one model version reaches a year of prediction runs, of which a week's used it.

Only a necessary condition is tested (per column, some wanted value inside the file's range), so
a file is never skipped that could hold a matching row; the caller still filters the rows it
reads. Integer and string key columns are tested; other types, a file without statistics, a
string statistic Delta may have truncated (kept only as a prefix), or a key looked for that is
null, keep the file.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tracelake.lineage.query.slices import KEY_SEPARATOR

__all__ = ["FileStats", "KeyFilter"]

log = logging.getLogger(__name__)

_TRUNCATED_AT = 32  # Delta's dataSkippingStringPrefixLength: longer strings are stored as prefixes


@dataclass(frozen=True)
class KeyFilter:
    """The composite keys a keyed hop looks for, split per column and sorted for range tests."""

    columns: tuple[str, ...]
    parts: tuple[list[str], ...]   # per column, the distinct values looked for (as text)

    @classmethod
    def of(cls, columns: Sequence[str], values: pa.Array) -> KeyFilter | None:
        """None when no file may be ruled out: a null key matches null keys, which no range shows."""
        if values.null_count or not columns:
            return None
        keys = values.to_pylist()
        split = [k.split(KEY_SEPARATOR) for k in keys] if len(columns) > 1 else [[k] for k in keys]
        if any(len(s) != len(columns) for s in split):
            return None  # a value that itself holds the separator: cannot be split back
        return cls(tuple(columns), tuple(sorted({s[i] for s in split}) for i in range(len(columns))))


class _ColumnTest:
    """The values looked for in one column, in the column's own order (ints as ints)."""

    def __init__(self, values: list[str], kind: str):
        self.kind = kind
        self.values: list[Any] = sorted(int(v) for v in values) if kind == "int" else values

    def may_hold(self, low: Any, high: Any) -> bool:
        if low is None or high is None:
            return True   # no statistics for this column in this file
        i = bisect.bisect_left(self.values, low)   # the smallest value at or above the minimum
        if i == len(self.values):
            return False
        if self.kind == "str" and len(high) >= _TRUNCATED_AT:
            # the max may be a prefix of the real one: compare prefixes (v <= max implies it)
            return bool(self.values[i][:_TRUNCATED_AT] <= high[:_TRUNCATED_AT])
        return bool(self.values[i] <= high)


class FileStats:
    """Per table, once: relative file path -> {column: (min, max)} from the latest snapshot."""

    def __init__(self) -> None:
        self._tables: dict[str, tuple[dict[str, int], pa.Table]] = {}
        self.loaded = 0   # tables whose statistics were read (for tests and benchmarks)
        self.skipped = 0  # files left out

    def prune(self, table_path: str, paths: list[str], wanted: KeyFilter) -> list[str]:
        """The relative ``paths`` whose statistics do not rule out every key in ``wanted``."""
        rows, stats = self._stats(table_path)
        tests = []
        for column, values in zip(wanted.columns, wanted.parts, strict=True):
            test = _column_test(stats, column, values)
            if test is not None:
                tests.append((test, stats.column(f"min.{column}"), stats.column(f"max.{column}")))
        if not tests:
            return paths
        kept = []
        for path in paths:
            i = rows.get(path)
            if i is None or all(t.may_hold(lo[i].as_py(), hi[i].as_py()) for t, lo, hi in tests):
                kept.append(path)
        self.skipped += len(paths) - len(kept)
        return kept

    def _stats(self, table_path: str) -> tuple[dict[str, int], pa.Table]:
        if table_path not in self._tables:
            from deltalake import DeltaTable
            from deltalake.exceptions import DeltaError

            try:
                adds = pa.table(DeltaTable(table_path).get_add_actions(flatten=True))
            except (DeltaError, OSError) as e:
                # Only an optimisation is lost: every file is read, and the hop's answer is the same.
                log.warning("file statistics of %s unreadable (%s); the hop reads every file", table_path, e)
                adds = pa.table({"path": pa.array([], pa.string())})
            self._tables[table_path] = ({p: i for i, p in enumerate(adds.column("path").to_pylist())}, adds)
            self.loaded += 1
        return self._tables[table_path]


def _column_test(stats: pa.Table, column: str, values: list[str]) -> _ColumnTest | None:
    name = f"min.{column}"
    if name not in stats.column_names or f"max.{column}" not in stats.column_names:
        return None
    kind = stats.schema.field(name).type
    if pa.types.is_integer(kind):
        try:
            return _ColumnTest(values, "int")
        except ValueError:
            return None  # a key value that is not an integer cannot be compared to the range
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _ColumnTest(values, "str")
    return None

