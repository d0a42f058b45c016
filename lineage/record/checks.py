"""Running declared tests at materialisation time (the core's side; the tests live in monitors).

A declared test is any object with this shape (``monitors.tests`` has the reusable ones):

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

import json
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from tracelake.lineage.record.redact import scrub_text
from tracelake.lineage.record.runid import new_run_id

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from tracelake.lineage.query.graph import AuditIndex
    from tracelake.lineage.lakehouse import Lakehouse
    from tracelake.lineage.record.run import ComponentRun

__all__ = ["CheckResult", "CheckContext", "DeclaredCheck", "evaluate_checks", "split_quarantine",
           "check_result_rows", "quarantine_counts", "VIOLATIONS_COLUMN"]

VIOLATIONS_COLUMN = "_tl_violations"


class DeclaredCheck(Protocol):
    name: str
    severity: str
    blocking: bool
    description: str
    runbook_url: str | None
    quarantine: bool

    def row_condition(self) -> str | None: ...
    def aggregates(self) -> dict[str, str]: ...
    def evaluate(self, ctx: "CheckContext", stats: dict[str, Any]) -> "CheckResult": ...


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

    def __init__(self, run: "ComponentRun", lake: "Lakehouse", frame: "DataFrame", rows: int,
                 quarantined_rows: int = 0, produced_schema: list[tuple[str, str]] | None = None,
                 quarantined_by_rule: dict[str, int] | None = None):
        self.run = run
        self.lake = lake
        self.frame = frame
        self.rows = rows
        self.quarantined_rows = quarantined_rows
        self.quarantined_by_rule = quarantined_by_rule or {}
        # (name, type) of what the component produced, before reserved columns and before any
        # schema merge into the table: what *arrived*, which is what a schema test judges.
        self.produced_schema = produced_schema

    @cached_property
    def index(self) -> "AuditIndex":
        from tracelake.lineage.query.graph import AuditIndex

        return AuditIndex(self.lake)


def _failed_because(check: Any, exc: BaseException) -> CheckResult:
    return CheckResult(
        name=check.name, passed=False, severity=getattr(check, "severity", "error"),
        blocking=getattr(check, "blocking", False),
        observed_text=f"the test itself failed: {type(exc).__name__}: {scrub_text(str(exc))[:300]}",
        description=getattr(check, "description", None), runbook_url=getattr(check, "runbook_url", None),
        details={"trace": scrub_text("".join(traceback.format_exception(exc)))[-4000:]},
    )


def evaluate_checks(checks: Sequence[Any], ctx: CheckContext) -> list[CheckResult]:
    """One aggregation pass for every row condition and aggregate, then each test's verdict."""
    exprs: dict[str, str] = {"__rows": "count(*)"}
    for i, check in enumerate(checks):
        cond = check.row_condition()
        if cond:
            exprs[f"__fail_{i}"] = f"sum(CASE WHEN coalesce(({cond}), false) THEN 0 ELSE 1 END)"
        for alias, sql in check.aggregates().items():
            exprs[f"{i}__{alias}"] = sql
    stats_row: dict[str, Any] = {}
    errors: dict[int, BaseException] = {}
    try:
        row = ctx.frame.selectExpr(*[f"{sql} AS `{alias}`" for alias, sql in exprs.items()]).collect()[0]
        stats_row = row.asDict()
    except Exception:  # e.g. one test names a column that no longer exists (a schema break)
        # Isolate the broken test(s): every other test still gets a real verdict.
        stats_row = {"__rows": ctx.rows}
        for i, _ in enumerate(checks):
            own = {k: v for k, v in exprs.items() if k == f"__fail_{i}" or k.startswith(f"{i}__")}
            if not own:
                continue
            try:
                part = ctx.frame.selectExpr(*[f"{sql} AS `{alias}`" for alias, sql in own.items()]).collect()[0]
                stats_row.update(part.asDict())
            except Exception as exc:  # this test cannot be computed on these rows: a failed result
                errors[i] = exc
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
    return results


def split_quarantine(checks: Sequence[Any], df: "DataFrame") -> tuple["DataFrame", "DataFrame"] | None:
    """(rows that pass every quarantining test, rows that fail at least one, with the names of the
    tests they fail in ``_tl_violations``), or None when no test quarantines."""
    from pyspark.sql import functions as F

    rules = [(c.name, c.row_condition()) for c in checks if getattr(c, "quarantine", False) and c.row_condition()]
    if not rules:
        return None
    flags = [F.when(~F.coalesce(F.expr(f"({cond})"), F.lit(False)), F.lit(name)) for name, cond in rules]
    marked = df.withColumn(VIOLATIONS_COLUMN, F.filter(F.array(*flags), lambda x: x.isNotNull()))
    good = marked.where(F.size(VIOLATIONS_COLUMN) == 0).drop(VIOLATIONS_COLUMN)
    bad = marked.where(F.size(VIOLATIONS_COLUMN) > 0)
    return good, bad


def quarantine_counts(bad: "DataFrame", rules: Sequence[str]) -> tuple[int, dict[str, int]]:
    """(rows quarantined, rows failing each rule) in one pass - a row can fail several rules."""
    from pyspark.sql import functions as F

    exprs = [F.count(F.lit(1)).alias("__all")] + [
        F.sum(F.array_contains(VIOLATIONS_COLUMN, rule).cast("int")).alias(f"r{i}") for i, rule in enumerate(rules)]
    row = bad.agg(*exprs).collect()[0]
    return int(row["__all"]), {rule: int(row[f"r{i}"] or 0) for i, rule in enumerate(rules)}


def check_result_rows(run: "ComponentRun", results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """The ``check_results`` audit records of one run's tests (samples bounded, secrets scrubbed)."""
    now = datetime.now(timezone.utc)
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
