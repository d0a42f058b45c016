"""The base of every declared test, and the SQL helpers the tests share.

A declared test is a frozen description (what to check, how strict, what to do when it fails)
that the materialisation evaluates on the rows about to be written. Options common to all tests
are keyword-only, so ``Range("fare_amount", 2.5, 400, max_fail_rate=0.01)`` reads as it means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tracelake.lineage.record.checks import CheckContext, CheckResult

__all__ = ["DeclaredTest", "RowRule", "sql_column", "sql_literal"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (date, datetime)):
        return f"'{value.isoformat()}'"
    return repr(value)


_SQL_WORDS = {"all", "and", "as", "between", "by", "case", "cast", "date", "else", "end", "from", "group", "in",
              "interval", "is", "like", "not", "null", "or", "order", "select", "table", "then", "time",
              "timestamp", "to", "when", "where"}


def sql_column(name: str) -> str:
    """A column in SQL: bare when it is a plain identifier (so conditions read naturally in
    results and the UI), back-quoted otherwise."""
    if _NAME.match(name) and name.lower() not in _SQL_WORDS:
        return name
    return "`" + name.replace("`", "``") + "`"


@dataclass(kw_only=True)
class DeclaredTest:
    name: str = ""                       # default: derived from what the test checks
    severity: str = "error"              # "error" | "warn"
    blocking: bool = False               # a failure stops the commit and downstream
    description: str = ""
    runbook_url: Any = None              # a URL, or a Runbook resolved when the result is produced
    quarantine: bool = False             # divert failing rows to <table>__quarantine (row rules)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.default_name()
        if not self.description:
            self.description = self.default_description()
        if self.severity not in ("error", "warn"):
            raise ValueError(f"test {self.name!r}: severity must be 'error' or 'warn', not {self.severity!r}")
        if self.quarantine and not self.quarantine_condition():
            raise ValueError(f"test {self.name!r}: only row-level and uniqueness tests can quarantine rows")
        if not _NAME.match(self.name):
            raise ValueError(f"test name {self.name!r} must be letters, digits and underscores")

    def default_name(self) -> str:
        return type(self).__name__.lower()

    def default_description(self) -> str:
        return ""

    def row_condition(self) -> str | None:
        """SQL a passing row satisfies; None for table-level tests."""
        return None

    def quarantine_condition(self) -> str | None:
        """SQL a row that stays in the table satisfies when the test quarantines (default: the row
        condition); may use window functions, as it is never aggregated."""
        return self.row_condition()

    def aggregates(self) -> dict[str, str]:
        """SQL aggregates the test needs over the rows (computed with every other test's)."""
        return {}

    def keyed_aggregates(self) -> dict[str, str]:
        """Aggregates that group the rows by a key (``count(DISTINCT ...)``). Beside the others
        they are free on a small input, but on a large one Spark carries every other aggregate
        through a hash map of one entry per key (10M keys: 68 s instead of 17 s), so there they
        get a pass of their own. Their values reach :meth:`evaluate` with the others'."""
        return {}

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        raise NotImplementedError

    def _result(self, passed: bool, **kw: Any) -> CheckResult:
        return CheckResult(name=self.name, passed=passed, severity=self.severity, blocking=self.blocking,
                           description=self.description,
                           runbook_url=None if self.runbook_url is None else str(self.runbook_url), **kw)


@dataclass(kw_only=True)
class RowRule(DeclaredTest):
    """A condition every row should meet; up to ``max_fail_rate`` of the rows may fail it."""

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
        detail = self.observed_detail(stats)
        return self._result(
            rate <= self.max_fail_rate, observed_value=rate, failing_rows=failing,
            observed_text=f"{failing} of {total} rows fail: {self.row_condition()}"
                          + (" (quarantined)" if self.quarantine and failing else "") + (f"; {detail}" if detail else ""),
            threshold_value=self.max_fail_rate, threshold_text=f"fail rate <= {self.max_fail_rate:g}",
        )

    def observed_detail(self, stats: dict[str, Any]) -> str:
        return ""
