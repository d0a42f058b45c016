"""Running declared tests at materialisation time (the core's side; the tests live in monitors).

A declared test is any object with this shape (``monitors.checks`` has the reusable ones):

- ``name``, ``severity`` ("error" | "warn"), ``blocking``, ``description``, ``runbook_url``;
- ``row_condition()``: a SQL boolean a passing row satisfies, or None for table-level tests;
- ``quarantine``: rows failing the condition go to ``<table>__quarantine`` instead of the table;
- ``aggregates()``: ``{alias: SQL aggregate}`` it needs over the written rows;
- ``evaluate(ctx, stats)`` -> :class:`CheckResult`.

All row conditions and aggregates of a component are computed in **one** Spark pass over the rows
this run wrote, so ten tests cost about one. A test that raises is reported as a failed result
naming the exception - a broken test must never read as a passing one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from tracelake.lineage.plan_size import larger_than
from tracelake.lineage.record.quarantine_marks import VIOLATIONS_COLUMN, by_rule, rule_counts
from tracelake.lineage.record.redact import REDACTED, bound_text, is_secret_key, remember_secret, scrub_text
from tracelake.lineage.record.runid import new_run_id

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from tracelake.lineage.lakehouse import Lakehouse
    from tracelake.lineage.query.graph import AuditIndex
    from tracelake.lineage.record.run import ComponentRun

__all__ = [
    "CheckContext",
    "CheckResult",
    "DeclaredCheck",
    "QuarantineCounts",
    "check_result_rows",
    "evaluate_checks",
    "evaluate_checks_marked",
    "sanitized",
]

log = logging.getLogger("tracelake.checks")


class DeclaredCheck(Protocol):
    name: str
    severity: str
    blocking: bool
    description: str
    runbook_url: str | None
    quarantine: bool

    def row_condition(self) -> str | None: ...
    def aggregates(self) -> dict[str, str]: ...
    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult: ...


@dataclass
class CheckResult:
    name: str
    passed: bool
    severity: str = "error"
    blocking: bool = False
    observed_value: float | None = None
    observed_text: str | None = None
    threshold_value: float | None = None
    threshold_text: str | None = None
    failing_rows: int | None = None
    description: str | None = None
    runbook_url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class CheckContext:
    """What a test can look at: the rows about to be written, the run's record, the history.

    Tests run *before* the commit (so a failing blocking test keeps bad rows out of the table);
    ``frame`` is exactly what would be written, without reserved columns or quarantined rows.
    """

    def __init__(self, run: ComponentRun, lake: Lakehouse, frame: DataFrame, rows: int | None,
                 quarantined_rows: int = 0, produced_schema: list[tuple[str, str]] | None = None,
                 quarantined_by_rule: dict[str, int] | None = None):
        self.run = run
        self.lake = lake
        self.frame = frame
        self._rows = rows
        self.quarantined_rows = quarantined_rows
        self.quarantined_by_rule = quarantined_by_rule or {}
        # (name, type) of what the component produced, before reserved columns and before any
        # schema merge into the table: what *arrived*, which is what a schema test judges.
        self.produced_schema = produced_schema

    @property
    def rows(self) -> int:
        """Rows about to be written. Known before the tests only when a job already counted
        them (the quarantine's); otherwise the tests' own pass counts them (``evaluate_checks``)."""
        if self._rows is None:
            raise RuntimeError("the rows have not been counted yet: evaluate tests with evaluate_checks()")
        return self._rows

    @rows.setter
    def rows(self, value: int) -> None:
        self._rows = value

    @property
    def rows_counted(self) -> bool:
        return self._rows is not None

    def earlier_runs(self, columns: Sequence[str]) -> pd.DataFrame:
        """This component's other succeeded runs (``run_id`` and ``columns``), read with the
        component as a filter and only those columns: a history test costs milliseconds in a
        lakehouse with years of runs, where the whole :attr:`index` takes ~0.5-1 s to build."""
        from tracelake.lineage.record.audit_tables import COMPONENT_RUNS

        wanted = list(dict.fromkeys(["run_id", "status", *columns]))
        runs = self.lake.store.read_arrow(COMPONENT_RUNS, columns=wanted,
                                          where={"component": self.run.component}).to_pandas()
        runs = runs.drop_duplicates("run_id")     # a run is one record, however it was read
        mine = runs[(runs["status"] == "succeeded") & (runs["run_id"] != self.run.run_id)]
        return mine[list(dict.fromkeys(["run_id", *columns]))].reset_index(drop=True)

    @cached_property
    def index(self) -> AuditIndex:
        from tracelake.lineage.query.graph import AuditIndex

        return AuditIndex(self.lake)


def _failed_because(check: Any, exc: BaseException) -> CheckResult:
    return CheckResult(
        name=check.name, passed=False, severity=getattr(check, "severity", "error"),
        blocking=getattr(check, "blocking", False),
        observed_text=f"the test itself failed: {type(exc).__name__}: {bound_text(str(exc), 300)}",
        description=getattr(check, "description", None), runbook_url=getattr(check, "runbook_url", None),
        details={"trace": bound_text("".join(traceback.format_exception(exc)), 4000, keep="tail")},
    )


# -- what a result may carry out of the process (secrets scrubbed, samples bounded) -------------
MAX_TEXT = 2000           # observed_text, threshold_text, description
MAX_DETAIL_STRING = 1000  # each string inside details
MAX_DETAIL_ITEMS = 50     # items of each list or mapping inside details
MAX_DETAILS_JSON = 4000   # the whole of details_json


def _bounded(value: Any, key: Any = None, depth: int = 0) -> Any:
    if isinstance(value, str):
        if is_secret_key(key) and value:
            remember_secret(value)
            return REDACTED
        return bound_text(value, MAX_DETAIL_STRING)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth > 6:
        return "..."
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k): _bounded(v, k, depth + 1) for k, v in items[:MAX_DETAIL_ITEMS]}
        if len(items) > MAX_DETAIL_ITEMS:
            out["..."] = f"{len(items) - MAX_DETAIL_ITEMS} more"
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        out_list = [_bounded(v, None, depth + 1) for v in items[:MAX_DETAIL_ITEMS]]
        if len(items) > MAX_DETAIL_ITEMS:
            out_list.append(f"... {len(items) - MAX_DETAIL_ITEMS} more")
        return out_list
    return bound_text(str(value), MAX_DETAIL_STRING)


def sanitized(result: CheckResult) -> CheckResult:
    """The result as it may leave the process - journal, audit table, Dagster check metadata, a
    failure's description: texts scrubbed of secrets and bounded (a 5 MB sample stays a few KB)."""
    details = _bounded(result.details or {})
    text = json.dumps(details, default=str)
    if len(text) > MAX_DETAILS_JSON:
        details = {"truncated_json": text[:MAX_DETAILS_JSON]}
    return dataclasses.replace(
        result, observed_text=bound_text(result.observed_text, MAX_TEXT),
        threshold_text=bound_text(result.threshold_text, MAX_TEXT), description=bound_text(result.description, MAX_TEXT),
        runbook_url=scrub_text(result.runbook_url) if isinstance(result.runbook_url, str) else result.runbook_url,
        details=details)


_KEYED_APART_ABOVE_BYTES = 64 * 1024 * 1024     # Spark's size estimate of the tested rows


def _large(frame: DataFrame) -> bool:
    """Above 64 MB by Spark's estimate, or without one (a frame made from Python rows through an
    RDD reports Long.MaxValue): key-grouping aggregates get their own pass. A day of the
    reference pipeline is a few hundred KB; 10M rows of orders are 180 MB of Parquet."""
    return larger_than(frame, _KEYED_APART_ABOVE_BYTES)


def _expressions(checks: Sequence[Any]) -> tuple[dict[str, str], dict[str, str]]:
    """({alias: SQL aggregate} of every row condition and aggregate, the same of key-grouping ones)."""
    exprs: dict[str, str] = {"__rows": "count(*)"}
    keyed: dict[str, str] = {}
    for i, check in enumerate(checks):
        cond = check.row_condition()
        if cond:
            exprs[f"__fail_{i}"] = f"sum(CASE WHEN coalesce(({cond}), false) THEN 0 ELSE 1 END)"
        for alias, sql in check.aggregates().items():
            exprs[f"{i}__{alias}"] = sql
        keyed_aggregates = getattr(check, "keyed_aggregates", None)   # optional for hand-written tests
        for alias, sql in (keyed_aggregates() if keyed_aggregates else {}).items():
            keyed[f"{i}__{alias}"] = sql
    return exprs, keyed


def _aggregate(frame: DataFrame, exprs: dict[str, str]) -> dict[str, Any]:
    return frame.selectExpr(*[f"{sql} AS `{alias}`" for alias, sql in exprs.items()]).collect()[0].asDict()


def evaluate_checks(checks: Sequence[Any], ctx: CheckContext) -> list[CheckResult]:
    """One aggregation pass for every row condition and aggregate (a second one for key-grouping
    aggregates on a large input: see ``_large``), then each test's verdict."""
    exprs, keyed = _expressions(checks)
    stats_row: dict[str, Any] = {}
    errors: dict[int, BaseException] = {}
    try:
        passes = [exprs | keyed]
        if keyed and _large(ctx.frame):
            passes = [exprs, keyed]     # see DeclaredTest.keyed_aggregates
        for own in passes:
            stats_row.update(_aggregate(ctx.frame, own))
        if not ctx.rows_counted:
            ctx.rows = int(stats_row["__rows"])
    except Exception:  # e.g. one test names a column that no longer exists (a schema break)
        if not ctx.rows_counted:
            # Rows nobody has counted yet: if they cannot be computed at all, this raises the
            # function's own error - the run's failure, not a test's.
            ctx.rows = ctx.frame.count()
        # Isolate the broken test(s): every other test still gets a real verdict.
        stats_row = {"__rows": ctx.rows}
        for i, _ in enumerate(checks):
            own = {k: v for k, v in (exprs | keyed).items() if k == f"__fail_{i}" or k.startswith(f"{i}__")}
            if not own:
                continue
            try:
                stats_row.update(_aggregate(ctx.frame, own))
            except Exception as exc:  # this test cannot be computed on these rows: a failed result
                errors[i] = exc
    return _verdicts(checks, ctx, stats_row, errors)


def _verdicts(checks: Sequence[Any], ctx: CheckContext, stats_row: dict[str, Any],
              errors: dict[int, BaseException]) -> list[CheckResult]:
    results = []
    for i, check in enumerate(checks):
        if i in errors:
            results.append(_failed_because(check, errors[i]))
            continue
        stats = {k.split("__", 1)[1]: v for k, v in stats_row.items() if k.startswith(f"{i}__")}
        stats["__rows"] = stats_row.get("__rows", ctx.rows)
        stats["__failing"] = stats_row.get(f"__fail_{i}")
        try:
            result = check.evaluate(ctx, stats)
        except Exception as exc:  # reported as a failed test, never swallowed
            result = _failed_because(check, exc)
        results.append(result)
    return [sanitized(r) for r in results]  # before anything records, logs or raises with them


@dataclass(frozen=True)
class QuarantineCounts:
    """Of a frame marked by :func:`mark_quarantine`: all its rows, the rows set aside, and the
    rows failing each quarantining test (a row can fail several)."""

    rows: int
    quarantined: int
    by_rule: dict[str, int]


def evaluate_checks_marked(checks: Sequence[Any], ctx: CheckContext, marked: DataFrame,
                           rules: Sequence[str]) -> tuple[list[CheckResult], QuarantineCounts] | None:
    """The quarantine's counts and the tests' aggregates in **one** job over the marked rows:
    grouped by whether a row is kept, the kept group's aggregates are exactly those over the
    rows to be written (``ctx.frame``) - one Spark job fewer per run than counting first (~60-70 ms
    of a day's run of the reference pipeline). None when that job fails (a test's expression errs on a row the quarantine
    sets aside; the function's rows cannot be computed) or no row is kept: the caller then
    counts and tests apart, each with its own handling of errors."""
    from pyspark.sql import functions as F

    exprs, keyed = _expressions(checks)
    separate = bool(keyed) and _large(ctx.frame)
    grouped = exprs if separate else exprs | keyed
    counts = rule_counts(rules)
    try:
        groups = {bool(row["__kept"]): row.asDict() for row in marked.groupBy(
            (F.size(VIOLATIONS_COLUMN) == 0).alias("__kept")).agg(
                *[F.expr(sql).alias(alias) for alias, sql in grouped.items()],
                *[column.alias(alias) for alias, column in counts.items()]).collect()}
    except Exception as exc:  # counted and tested apart: a real error is met again there; a test that
        # errs only on rows the quarantine sets aside gets its verdict on the kept rows
        _counted_apart(exc)
        return None
    kept, bad = groups.get(True), groups.get(False)
    if kept is None:
        return None     # a global aggregate over no rows has values (0, null) a group cannot give
    quarantined = int(bad["__rows"]) if bad else 0
    failed_by_rule = by_rule(bad or {}, rules)
    stats_row = {k: v for k, v in kept.items() if k != "__kept" and k not in counts}
    ctx.rows = int(stats_row["__rows"])
    ctx.quarantined_rows, ctx.quarantined_by_rule = quarantined, failed_by_rule
    if separate:
        try:
            stats_row.update(_aggregate(ctx.frame, keyed))
        except Exception as exc:  # as above
            _counted_apart(exc)
            return None
    return (_verdicts(checks, ctx, stats_row, {}),
            QuarantineCounts(rows=ctx.rows + quarantined, quarantined=quarantined, by_rule=failed_by_rule))


def _counted_apart(exc: BaseException) -> None:
    text = str(exc)
    log.info("quarantine and tests counted apart: %s", scrub_text(text.splitlines()[0] if text else repr(exc)))


def check_result_rows(run: ComponentRun, results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """The ``check_results`` audit records of one run's tests (samples bounded, secrets scrubbed)."""
    now = datetime.now(UTC)
    results = [sanitized(r) for r in results]  # again, for results made elsewhere (cached scans: cheap)
    return [{
        "check_id": new_run_id(), "run_id": run.run_id, "component": run.component, "asset_key": run.asset_key,
        "partition_key": run.partition_key, "dagster_run_id": run.dagster_run_id, "check_name": r.name,
        "severity": r.severity, "passed": bool(r.passed), "blocking": bool(r.blocking),
        "observed_value": None if r.observed_value is None else float(r.observed_value),
        "observed_text": r.observed_text, "threshold_value": None if r.threshold_value is None else float(r.threshold_value),
        "threshold_text": r.threshold_text, "failing_rows": r.failing_rows, "description": r.description,
        "runbook_url": r.runbook_url, "details_json": json.dumps(r.details, default=str) if r.details else None,
        "evaluated_at": now,
    } for r in results]
