"""Table-level declared tests: the shape of what arrived, uniqueness, and the run compared with
its own history and its inputs.

    Schema({"trip_id": "string", "fare_amount": "double"}, blocking=True)
    Unique("trip_id")
    RowCountVsHistory(tolerance=0.3, same_weekday=True)
    InputFreshness()
    ActionLimit("positive_rate", "avg(CASE WHEN predicted THEN 1.0 ELSE 0.0 END)", 0.15)
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from tracelake.lineage.record.checks import CheckContext, CheckResult
from tracelake.monitors.checks.base import DeclaredTest, sql_column

__all__ = ["ActionLimit", "InputFreshness", "RowCount", "RowCountVsHistory", "Schema", "Unique", "duplicate_rows"]

_TYPE_ALIASES = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint", "str": "string",
                 "float64": "double", "int64": "bigint", "int32": "int", "bool": "boolean"}


def _canonical_type(t: Any) -> str:
    if isinstance(t, dict):
        return json.dumps(t, sort_keys=True)
    t = str(t).strip().lower()
    return _TYPE_ALIASES.get(t, t)


@dataclass(init=False)
class Unique(DeclaredTest):
    """No two rows share a key. With ``quarantine=True`` the extra rows of each key are set aside
    (the first is kept) and up to ``max_fail_rate`` of the rows may be such duplicates."""

    columns: Sequence[str] = ()
    max_fail_rate: float = 0.0

    def __init__(self, *columns: str, max_fail_rate: float = 0.0, **options: Any):  # Unique("a", "b", severity="warn")
        if not columns:
            raise ValueError("Unique needs at least one key column")
        self.columns, self.max_fail_rate = list(columns), max_fail_rate
        DeclaredTest.__init__(self, **options)

    def default_name(self) -> str:
        return f"{'_'.join(self.columns)}_unique"

    def default_description(self) -> str:
        return f"({', '.join(self.columns)}) is unique"

    def quarantine_condition(self) -> str:
        """The first row of each key stays (the first by a hash of the whole row, so the choice is
        the same every time the same rows arrive); the others are quarantined."""
        keys = ", ".join(sql_column(c) for c in self.columns)
        return f"row_number() OVER (PARTITION BY {keys} ORDER BY xxhash64(*)) = 1"

    def aggregates(self) -> dict[str, str]:
        """Rows with a full key, in the pass every test shares; with :meth:`keyed_aggregates`'
        distinct key hashes: when the two agree no key repeats (equal keys always share a hash),
        so the common case needs no job of its own; only a difference (a duplicate, or a rare
        hash collision) is counted exactly by :func:`duplicate_rows`."""
        if self.quarantine:
            return {}
        return {"keyed": f"count_if({self._present()})"}

    def keyed_aggregates(self) -> dict[str, str]:
        if self.quarantine:
            return {}
        keys = ", ".join(sql_column(c) for c in self.columns)
        return {"distinct_hashes": f"count(DISTINCT CASE WHEN {self._present()} THEN xxhash64({keys}) END)"}

    def _present(self) -> str:
        return " AND ".join(f"{sql_column(c)} IS NOT NULL" for c in self.columns)

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        if self.quarantine:
            dupes = int(ctx.quarantined_by_rule.get(self.name, 0))
            total = ctx.rows + ctx.quarantined_rows
            rate = dupes / total if total else 0.0
            return self._result(rate <= self.max_fail_rate, observed_value=dupes, failing_rows=dupes,
                                observed_text=f"{dupes} duplicate key rows quarantined (first of each key kept)",
                                threshold_value=self.max_fail_rate, threshold_text=f"fail rate <= {self.max_fail_rate:g}")
        keyed, distinct = stats.get("keyed"), stats.get("distinct_hashes")
        if keyed is not None and distinct is not None and int(keyed) == int(distinct):
            dupes = 0
        else:
            dupes = duplicate_rows(ctx.frame, self.columns)
        return self._result(dupes == 0, observed_value=dupes, failing_rows=dupes,
                            observed_text=f"{dupes} duplicate key rows", threshold_value=0, threshold_text="0 duplicates")


def duplicate_rows(df: Any, columns: Sequence[str]) -> int:
    """Rows beyond the first for each key (nulls excluded), exactly, without a distinct over the
    keys themselves: group 64-bit hashes of the keys (cheap), then compare real keys only among
    the rows whose hash repeats. Equal keys always share a hash, so nothing is missed; a hash
    collision only adds candidates that the exact pass then clears."""
    from pyspark.sql import functions as F

    present = df.where(" AND ".join(f"{sql_column(c)} IS NOT NULL" for c in columns))
    hashed = present.withColumn("__h", F.xxhash64(*[F.col(c) for c in columns]))
    repeated = [r["__h"] for r in hashed.groupBy("__h").count().where("count > 1").select("__h").collect()]
    if not repeated:
        return 0
    candidates = hashed.where(F.col("__h").isin(repeated))
    counts = candidates.groupBy(*columns).count().where("count > 1")
    return int(counts.agg(F.sum(F.col("count") - 1)).collect()[0][0] or 0)


@dataclass
class Schema(DeclaredTest):
    """Columns and types of what arrived, no unexpected columns, and no nulls where none may be."""

    columns: Mapping[str, str]
    allow_extra: bool = field(default=False, kw_only=True)
    non_null: Sequence[str] = field(default=(), kw_only=True)
    blocking: bool = field(default=True, kw_only=True)

    def default_name(self) -> str:
        return "schema"

    def default_description(self) -> str:
        return f"{len(self.columns)} expected columns with their types"

    def aggregates(self) -> dict[str, str]:
        return {f"nulls_{i}": f"sum(CASE WHEN {sql_column(c)} IS NULL THEN 1 ELSE 0 END)"
                for i, c in enumerate(self.non_null)}

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        actual = {k: v for k, v in (ctx.produced_schema or []) if not k.startswith("_tl_")}
        problems = []
        for col, expected in self.columns.items():
            if col not in actual:
                problems.append(f"missing column {col}")
            elif _canonical_type(actual[col]) != _canonical_type(expected):
                problems.append(f"{col} is {_canonical_type(actual[col])}, expected {_canonical_type(expected)}")
        if not self.allow_extra:
            problems += [f"unexpected column {c}" for c in sorted(set(actual) - set(self.columns))]
        for i, col in enumerate(self.non_null):
            nulls = int(stats.get(f"nulls_{i}") or 0)
            if nulls:
                problems.append(f"{nulls} null values in {col}")
        return self._result(not problems, observed_value=len(problems),
                            observed_text="; ".join(problems) or "as declared", threshold_value=0,
                            threshold_text="no schema differences", details={"actual": actual})


@dataclass
class RowCount(DeclaredTest):
    """The batch has between ``min`` and ``max`` rows - e.g. ``RowCount(min=1, blocking=True)``
    refuses an empty feed instead of recording an empty day as a normal one."""

    min: int | None = None
    max: int | None = None

    def default_name(self) -> str:
        return "row_count"

    def default_description(self) -> str:
        return f"between {self.min if self.min is not None else 0} and {self.max if self.max is not None else 'any'} rows"

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        rows = int(ctx.rows)
        ok = (self.min is None or rows >= self.min) and (self.max is None or rows <= self.max)
        return self._result(ok, observed_value=rows, observed_text=f"{rows} rows", threshold_text=self.default_description())


def _weekday(partition_key: str | None) -> int | None:
    try:
        return date.fromisoformat(str(partition_key)[:10]).weekday()
    except (TypeError, ValueError):
        return None


@dataclass
class RowCountVsHistory(DeclaredTest):
    """Rows written versus the component's own recent runs (optionally the same weekday)."""

    tolerance: float = 0.3
    window: int = 7
    same_weekday: bool = False
    min_history: int = 3
    severity: str = field(default="warn", kw_only=True)

    def default_name(self) -> str:
        return "row_count_vs_history"

    def default_description(self) -> str:
        what = "the same weekday of the last" if self.same_weekday else "the last"
        return f"row count within ±{self.tolerance:.0%} of the median of {what} {self.window} runs"

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        mine = ctx.earlier_runs(["partition_key", "output_rows"])
        mine = mine[mine["output_rows"].notna()]
        if self.same_weekday and ctx.run.partition_key:
            weekday = _weekday(ctx.run.partition_key)
            mine = mine[[_weekday(p) == weekday for p in mine["partition_key"]]]
        if ctx.run.partition_key:
            mine = mine[mine["partition_key"] < ctx.run.partition_key]
        history = [int(r) for r in mine.sort_values("partition_key")["output_rows"].tail(self.window)]
        rows = int(ctx.rows)
        if len(history) < self.min_history:
            return self._result(True, observed_value=rows, observed_text=f"{rows} rows; only {len(history)} earlier "
                                f"runs to compare with (need {self.min_history})", threshold_text="n/a")
        median = statistics.median(history)
        change = (rows - median) / median if median else float("inf")
        return self._result(abs(change) <= self.tolerance, observed_value=change,
                            observed_text=f"{rows} rows vs median {median:g} of {len(history)} runs ({change:+.1%})",
                            threshold_value=self.tolerance, threshold_text=f"|change| <= {self.tolerance:.0%}",
                            details={"history": history})


@dataclass
class InputFreshness(DeclaredTest):
    """Upstream producer staleness: partitions that never arrived, and how old the newest
    upstream data is (``max_age_hours``, wall clock)."""

    max_missing_partitions: int = 0
    max_age_hours: float | None = None
    # Inputs whose windows legitimately reach before their history (a model lookback) can be left out.
    inputs: Sequence[str] | None = None
    severity: str = field(default="warn", kw_only=True)

    def default_name(self) -> str:
        return "input_freshness"

    def default_description(self) -> str:
        return "every input partition arrived" + (
            f" and is at most {self.max_age_hours:g} h old" if self.max_age_hours else "")

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        watched = [i for i in ctx.run.inputs if i.get("kind") == "table"
                   and (self.inputs is None or i["name"] in self.inputs)]
        missing = {i["name"]: list(i["missing_partitions"]) for i in watched if i.get("missing_partitions")}
        n_missing = sum(len(v) for v in missing.values())
        problems = [f"{name}: {len(parts)} partition(s) never arrived ({', '.join(parts[:5])})"
                    for name, parts in missing.items()]
        oldest_h = None
        stale = False
        if self.max_age_hours is not None:
            now = datetime.now(UTC)
            for inp in watched:
                writers = ctx.index.live_writers(inp["name"], int(inp["version"]), inp.get("partitions"))
                ends = [ctx.index.runs.at[w, "ended_at"] for w in writers if ctx.index.has(w)]
                ends = [e for e in ends if e is not None and e == e]
                if ends:
                    age = (now - max(ends).to_pydatetime()).total_seconds() / 3600
                    oldest_h = age if oldest_h is None else max(oldest_h, age)
                    if age > self.max_age_hours:
                        stale = True
                        problems.append(f"{inp['name']}: newest data is {age:.1f} h old")
        passed = n_missing <= self.max_missing_partitions and not stale
        return self._result(passed, observed_value=n_missing, observed_text="; ".join(problems) or "all inputs fresh",
                            threshold_value=self.max_missing_partitions,
                            threshold_text=f"<= {self.max_missing_partitions} missing partitions"
                            + (f", <= {self.max_age_hours:g} h old" if self.max_age_hours else ""),
                            details={"missing": missing, "oldest_input_age_h": oldest_h})


@dataclass
class ActionLimit(DeclaredTest):
    """A cap on how far one run may move a statistic of its output versus the last N runs
    ("Hidden Technical Debt"): e.g. the positive-prediction rate. The value is also logged as a
    run metric, so it has history for the next run and for anomaly detection."""

    metric: str
    expression: str
    max_change: float
    window: int = 7
    severity: str = field(default="warn", kw_only=True)

    def default_name(self) -> str:
        return f"{self.metric}_action_limit"

    def default_description(self) -> str:
        return f"{self.metric} moves at most {self.max_change:g} from the median of the last {self.window} runs"

    def aggregates(self) -> dict[str, str]:
        return {"value": self.expression}

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        value = stats.get("value")
        if value is None:
            return self._result(True, observed_text="no rows", threshold_value=self.max_change)
        value = float(value)
        ctx.run.log_metric(self.metric, value)
        earlier = ctx.earlier_runs(["metrics"]).sort_values("run_id").tail(self.window)
        history = []
        for metrics in earlier["metrics"]:
            m = dict(metrics) if metrics is not None else {}
            if self.metric in m:
                history.append(float(m[self.metric]))
        if not history:
            return self._result(True, observed_value=value, observed_text=f"{self.metric}={value:.4f}; no history yet",
                                threshold_value=self.max_change)
        median = statistics.median(history)
        change = value - median
        return self._result(abs(change) <= self.max_change, observed_value=value,
                            observed_text=f"{self.metric}={value:.4f} vs median {median:.4f} of {len(history)} runs "
                                          f"({change:+.4f})",
                            threshold_value=self.max_change, threshold_text=f"|change| <= {self.max_change:g}",
                            details={"history": history, "change": change})
