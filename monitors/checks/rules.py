"""Reusable declared tests: listed once in a component's definition, run at every materialisation.

    @component(checks=[
        Schema({"trip_id": "string", "fare_amount": "double"}, blocking=True),
        Range("fare_amount", 0.5, 500),
        Expression("tip_le_3x_fare", "tip_amount <= fare_amount * 3", quarantine=True),
        RowCountVsHistory(tolerance=0.3, same_weekday=True),
        InputFreshness(),
    ])

Row-level tests (Range, AllowedValues, Pattern, Expression, NotNull) compile to one SQL condition
each and may ``quarantine`` failing rows; every test's aggregates are computed in the same
single Spark pass (see ``tracelake.lineage.record.checks``). Each result carries the observed value and
the threshold, is stored with the run in ``audit.check_results`` and shows in the Dagster UI.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Mapping, Sequence

from tracelake.lineage.record.checks import CheckContext, CheckResult

__all__ = ["Schema", "Range", "AllowedValues", "Pattern", "NotNull", "Unique", "NullRate", "Expression",
           "RowCountVsHistory", "InputFreshness", "ActionLimit", "DeclaredTest"]

_TYPE_ALIASES = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint", "str": "string",
                 "float64": "double", "int64": "bigint", "int32": "int", "bool": "boolean"}


def _canonical_type(t: Any) -> str:
    if isinstance(t, dict):
        return json.dumps(t, sort_keys=True)
    t = str(t).strip().lower()
    return _TYPE_ALIASES.get(t, t)


def _lit(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (date, datetime)):
        return f"'{value.isoformat()}'"
    return repr(value)


def _col(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@dataclass
class DeclaredTest:
    name: str = ""
    severity: str = "error"          # "error" | "warn"
    blocking: bool = False           # stop downstream assets in the same run when it fails
    description: str = ""
    runbook_url: str | None = None
    quarantine: bool = False         # divert failing rows to <table>__quarantine (row-level tests)

    def __post_init__(self) -> None:
        if self.severity not in ("error", "warn"):
            raise ValueError(f"test {self.name!r}: severity must be 'error' or 'warn', not {self.severity!r}")
        if self.quarantine and not self.row_condition():
            raise ValueError(f"test {self.name!r}: only row-level tests can quarantine rows")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.name):
            raise ValueError(f"test name {self.name!r} must be letters, digits and underscores")

    def row_condition(self) -> str | None:
        return None

    def aggregates(self) -> dict[str, str]:
        return {}

    def _result(self, passed: bool, **kw: Any) -> CheckResult:
        return CheckResult(name=self.name, passed=passed, severity=self.severity, blocking=self.blocking,
                           description=self.description, runbook_url=self.runbook_url, **kw)


@dataclass
class _RowRule(DeclaredTest):
    """A condition every row should meet; ``max_fail_rate`` of rows may fail it."""

    max_fail_rate: float = 0.0

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        written = int(stats.get("__rows") or 0)
        if self.quarantine:
            failing = int(ctx.quarantined_by_rule.get(self.name, 0))
            total = written + int(ctx.quarantined_rows)
        else:
            failing = int(stats.get("__failing") or 0)
            total = written
        rate = failing / total if total else 0.0
        detail = self._observed_detail(stats)
        return self._result(
            rate <= self.max_fail_rate, observed_value=rate, failing_rows=failing,
            observed_text=f"{failing} of {total} rows fail `{self.row_condition()}`"
                          + (" (quarantined)" if self.quarantine and failing else "") + (f"; {detail}" if detail else ""),
            threshold_value=self.max_fail_rate, threshold_text=f"fail rate <= {self.max_fail_rate:g}",
        )

    def _observed_detail(self, stats: dict[str, Any]) -> str:
        return ""


@dataclass
class Range(_RowRule):
    column: str = ""
    min: float | None = None
    max: float | None = None

    def __init__(self, column: str, min: float | None = None, max: float | None = None, *, name: str | None = None,
                 max_fail_rate: float = 0.0, severity: str = "error", blocking: bool = False, quarantine: bool = False,
                 description: str = "", runbook_url: str | None = None):
        self.column, self.min, self.max, self.max_fail_rate = column, min, max, max_fail_rate
        bounds = f"{'' if min is None else min} .. {'' if max is None else max}"
        super().__init__(name or f"{column}_range", severity, blocking,
                         description or f"{column} within [{bounds}]", runbook_url, quarantine)
        self.max_fail_rate = max_fail_rate

    def row_condition(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{_col(self.column)} >= {_lit(self.min)}")
        if self.max is not None:
            parts.append(f"{_col(self.column)} <= {_lit(self.max)}")
        return f"{_col(self.column)} IS NULL OR ({' AND '.join(parts) or 'true'})"

    def aggregates(self) -> dict[str, str]:
        return {"min": f"min({_col(self.column)})", "max": f"max({_col(self.column)})"}

    def _observed_detail(self, stats: dict[str, Any]) -> str:
        return f"observed range [{stats.get('min')} .. {stats.get('max')}]"


@dataclass
class AllowedValues(_RowRule):
    column: str = ""
    values: Sequence[Any] = ()

    def __init__(self, column: str, values: Sequence[Any], *, name: str | None = None, max_fail_rate: float = 0.0,
                 severity: str = "error", blocking: bool = False, quarantine: bool = False, description: str = "",
                 runbook_url: str | None = None):
        self.column, self.values, self.max_fail_rate = column, list(values), max_fail_rate
        super().__init__(name or f"{column}_allowed", severity, blocking,
                         description or f"{column} in {list(values)}", runbook_url, quarantine)
        self.max_fail_rate = max_fail_rate

    def row_condition(self) -> str:
        return f"{_col(self.column)} IS NULL OR {_col(self.column)} IN ({', '.join(_lit(v) for v in self.values)})"

    def aggregates(self) -> dict[str, str]:
        allowed = ", ".join(_lit(v) for v in self.values)
        return {"unexpected": f"slice(array_distinct(collect_list(CASE WHEN {_col(self.column)} NOT IN ({allowed}) "
                              f"THEN CAST({_col(self.column)} AS STRING) END)), 1, 5)"}

    def _observed_detail(self, stats: dict[str, Any]) -> str:
        return f"unexpected values {stats.get('unexpected')}" if stats.get("unexpected") else ""


@dataclass
class Pattern(_RowRule):
    column: str = ""
    regex: str = ""

    def __init__(self, column: str, regex: str, *, name: str | None = None, max_fail_rate: float = 0.0,
                 severity: str = "error", blocking: bool = False, quarantine: bool = False, description: str = "",
                 runbook_url: str | None = None):
        re.compile(regex)  # a bad pattern fails at definition time
        self.column, self.regex, self.max_fail_rate = column, regex, max_fail_rate
        super().__init__(name or f"{column}_pattern", severity, blocking,
                         description or f"{column} matches /{regex}/", runbook_url, quarantine)
        self.max_fail_rate = max_fail_rate

    def row_condition(self) -> str:
        return f"{_col(self.column)} IS NULL OR {_col(self.column)} RLIKE {_lit(self.regex)}"


@dataclass
class NotNull(_RowRule):
    columns: Sequence[str] = ()

    def __init__(self, *columns: str, name: str | None = None, max_fail_rate: float = 0.0, severity: str = "error",
                 blocking: bool = False, quarantine: bool = False, description: str = "", runbook_url: str | None = None):
        self.columns, self.max_fail_rate = list(columns), max_fail_rate
        super().__init__(name or f"{'_'.join(columns)}_not_null", severity, blocking,
                         description or f"{', '.join(columns)} present", runbook_url, quarantine)
        self.max_fail_rate = max_fail_rate

    def row_condition(self) -> str:
        return " AND ".join(f"{_col(c)} IS NOT NULL" for c in self.columns)


@dataclass
class Expression(_RowRule):
    condition: str = ""

    def __init__(self, name: str, condition: str, *, max_fail_rate: float = 0.0, severity: str = "error",
                 blocking: bool = False, quarantine: bool = False, description: str = "",
                 runbook_url: str | None = None):
        self.condition, self.max_fail_rate = condition, max_fail_rate
        super().__init__(name, severity, blocking, description or condition, runbook_url, quarantine)
        self.max_fail_rate = max_fail_rate

    def row_condition(self) -> str:
        return self.condition


@dataclass
class Unique(DeclaredTest):
    columns: Sequence[str] = ()

    def __init__(self, *columns: str, name: str | None = None, severity: str = "error", blocking: bool = False,
                 description: str = "", runbook_url: str | None = None):
        self.columns = list(columns)
        super().__init__(name or f"{'_'.join(columns)}_unique", severity, blocking,
                         description or f"({', '.join(columns)}) is unique", runbook_url, False)

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        dupes = duplicate_rows(ctx.written, self.columns)
        return self._result(dupes == 0, observed_value=dupes, failing_rows=dupes,
                            observed_text=f"{dupes} duplicate key rows", threshold_value=0, threshold_text="0 duplicates")


def duplicate_rows(df: Any, columns: Sequence[str]) -> int:
    """Rows beyond the first for each key (nulls excluded), exactly, without a distinct over the
    keys themselves: group 64-bit hashes of the keys (cheap), then compare real keys only among
    the rows whose hash repeats. Equal keys always share a hash, so nothing is missed; a hash
    collision only adds candidates that the exact pass then clears."""
    from pyspark.sql import functions as F

    present = df.where(" AND ".join(f"{_col(c)} IS NOT NULL" for c in columns))
    hashed = present.withColumn("__h", F.xxhash64(*[F.col(c) for c in columns]))
    repeated = [r["__h"] for r in hashed.groupBy("__h").count().where("count > 1").select("__h").collect()]
    if not repeated:
        return 0
    candidates = hashed.where(F.col("__h").isin(repeated))
    counts = candidates.groupBy(*columns).count().where("count > 1")
    return int(counts.agg(F.sum(F.col("count") - 1)).collect()[0][0] or 0)


@dataclass
class NullRate(DeclaredTest):
    column: str = ""
    max_rate: float = 0.0

    def __init__(self, column: str, max_rate: float, *, name: str | None = None, severity: str = "warn",
                 blocking: bool = False, description: str = "", runbook_url: str | None = None):
        self.column, self.max_rate = column, max_rate
        super().__init__(name or f"{column}_null_rate", severity, blocking,
                         description or f"at most {max_rate:.1%} of {column} missing", runbook_url, False)

    def aggregates(self) -> dict[str, str]:
        return {"rate": f"avg(CASE WHEN {_col(self.column)} IS NULL THEN 1.0 ELSE 0.0 END)"}

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        rate = float(stats.get("rate") or 0.0)
        return self._result(rate <= self.max_rate, observed_value=rate, observed_text=f"{rate:.2%} null",
                            threshold_value=self.max_rate, threshold_text=f"<= {self.max_rate:.2%}")


@dataclass
class Schema(DeclaredTest):
    """Columns, types and nullability of what was written, and no unexpected columns."""

    columns: Mapping[str, str] = field(default_factory=dict)
    allow_extra: bool = False
    non_null: Sequence[str] = ()

    def __init__(self, columns: Mapping[str, str], *, allow_extra: bool = False, non_null: Sequence[str] = (),
                 name: str = "schema", severity: str = "error", blocking: bool = True, description: str = "",
                 runbook_url: str | None = None):
        self.columns, self.allow_extra, self.non_null = dict(columns), allow_extra, list(non_null)
        super().__init__(name, severity, blocking,
                         description or f"{len(columns)} expected columns with their types", runbook_url, False)

    def aggregates(self) -> dict[str, str]:
        return {f"nulls_{i}": f"sum(CASE WHEN {_col(c)} IS NULL THEN 1 ELSE 0 END)" for i, c in enumerate(self.non_null)}

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        if ctx.produced_schema is not None:
            actual = dict(ctx.produced_schema)
        else:
            actual = {f["name"]: f["type"] for f in json.loads(ctx.output.schema_json)} if ctx.output else {}
        actual = {k: v for k, v in actual.items() if not k.startswith("_tl_")}
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

    def row_condition(self) -> None:
        return None


@dataclass
class RowCountVsHistory(DeclaredTest):
    """Rows written versus the component's own recent runs (optionally the same weekday)."""

    tolerance: float = 0.3
    window: int = 7
    same_weekday: bool = False
    min_history: int = 3

    def __init__(self, *, tolerance: float = 0.3, window: int = 7, same_weekday: bool = False, min_history: int = 3,
                 name: str = "row_count_vs_history", severity: str = "warn", blocking: bool = False,
                 description: str = "", runbook_url: str | None = None):
        self.tolerance, self.window, self.same_weekday, self.min_history = tolerance, window, same_weekday, min_history
        what = "the same weekday of the last" if same_weekday else "the last"
        super().__init__(name, severity, blocking,
                         description or f"row count within ±{tolerance:.0%} of the median of {what} {window} runs",
                         runbook_url, False)

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        runs = ctx.index.runs
        mine = runs[(runs["component"] == ctx.run.component) & (runs["status"] == "succeeded")
                    & (runs["run_id"] != ctx.run.run_id) & runs["output_rows"].notna()]
        if self.same_weekday and ctx.run.partition_key:
            weekday = _weekday(ctx.run.partition_key)
            mine = mine[[_weekday(p) == weekday for p in mine["partition_key"]]]
        if ctx.run.partition_key:
            mine = mine[mine["partition_key"] < ctx.run.partition_key]
        history = [int(r) for r in mine.sort_values("partition_key")["output_rows"].tail(self.window)]
        rows = int(ctx.output.rows or 0) if ctx.output else 0
        if len(history) < self.min_history:
            return self._result(True, observed_value=rows, observed_text=f"{rows} rows; only {len(history)} earlier "
                                f"runs to compare with (need {self.min_history})", threshold_text="n/a")
        median = statistics.median(history)
        change = (rows - median) / median if median else float("inf")
        return self._result(abs(change) <= self.tolerance, observed_value=change,
                            observed_text=f"{rows} rows vs median {median:g} of {len(history)} runs ({change:+.1%})",
                            threshold_value=self.tolerance, threshold_text=f"|change| <= {self.tolerance:.0%}",
                            details={"history": history})


def _weekday(partition_key: str | None) -> int | None:
    try:
        return date.fromisoformat(str(partition_key)[:10]).weekday()
    except (TypeError, ValueError):
        return None


@dataclass
class InputFreshness(DeclaredTest):
    """Upstream producer staleness: partitions that never arrived, and how old the newest
    upstream data is (``max_age_hours``, wall clock)."""

    max_missing_partitions: int = 0
    max_age_hours: float | None = None
    inputs: Sequence[str] | None = None

    def __init__(self, *, max_missing_partitions: int = 0, max_age_hours: float | None = None,
                 inputs: Sequence[str] | None = None, name: str = "input_freshness", severity: str = "warn",
                 blocking: bool = False, description: str = "", runbook_url: str | None = None):
        self.max_missing_partitions, self.max_age_hours = max_missing_partitions, max_age_hours
        # Inputs whose windows legitimately reach before their history (a model lookback) can be left out.
        self.inputs = list(inputs) if inputs is not None else None
        super().__init__(name, severity, blocking,
                         description or "every input partition arrived" + (
                             f" and is at most {max_age_hours:g} h old" if max_age_hours else ""), runbook_url, False)

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        watched = [i for i in ctx.run.inputs if i.get("kind") == "table"
                   and (self.inputs is None or i["name"] in self.inputs)]
        missing = {i["name"]: list(i["missing_partitions"]) for i in watched if i.get("missing_partitions")}
        n_missing = sum(len(v) for v in missing.values())
        problems = [f"{name}: {len(parts)} partition(s) never arrived ({', '.join(parts[:5])})"
                    for name, parts in missing.items()]
        oldest_h = None
        if self.max_age_hours is not None:
            now = datetime.now(timezone.utc)
            for inp in watched:
                writers = ctx.index.live_writers(inp["name"], int(inp["version"]), inp.get("partitions"))
                ends = [ctx.index.runs.at[w, "ended_at"] for w in writers if ctx.index.has(w)]
                ends = [e for e in ends if e is not None and e == e]
                if ends:
                    age = (now - max(ends).to_pydatetime()).total_seconds() / 3600
                    oldest_h = age if oldest_h is None else max(oldest_h, age)
                    if age > self.max_age_hours:
                        problems.append(f"{inp['name']}: newest data is {age:.1f} h old")
        passed = n_missing <= self.max_missing_partitions and not any("h old" in p for p in problems)
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

    metric: str = ""
    expression: str = ""
    max_change: float = 0.1
    window: int = 7

    def __init__(self, metric: str, expression: str, max_change: float, *, window: int = 7, name: str | None = None,
                 severity: str = "warn", blocking: bool = False, description: str = "", runbook_url: str | None = None):
        self.metric, self.expression, self.max_change, self.window = metric, expression, max_change, window
        super().__init__(name or f"{metric}_action_limit", severity, blocking,
                         description or f"{metric} moves at most {max_change:g} from the median of the last {window} runs",
                         runbook_url, False)

    def aggregates(self) -> dict[str, str]:
        return {"value": self.expression}

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        value = stats.get("value")
        if value is None:
            return self._result(True, observed_text="no rows", threshold_value=self.max_change)
        value = float(value)
        ctx.run.log_metric(self.metric, value)
        runs = ctx.index.runs
        earlier = runs[(runs["component"] == ctx.run.component) & (runs["status"] == "succeeded")
                       & (runs["run_id"] != ctx.run.run_id)]
        history = []
        for rid in sorted(earlier.index)[-self.window:]:
            m = ctx.index.record(rid)["metrics"]
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
