"""Marking the rows a batch sets aside: which quarantining tests each row fails.

Every quarantining test's condition goes into one SQL expression that adds ``_tl_violations`` (the
names of the tests a row fails) to the batch; the batch then splits into the rows kept and the
rows set aside, and the tests' single pass counts both (``checks.evaluate_checks_marked``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tracelake.lineage.record.tables import sql_literal

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = [
    "VIOLATIONS_COLUMN",
    "by_rule",
    "mark_quarantine",
    "quarantine_counts",
    "quarantine_rules",
    "rule_counts",
    "split_marked",
]

VIOLATIONS_COLUMN = "_tl_violations"


def quarantine_rules(checks: Sequence[Any]) -> list[tuple[str, str]]:
    """(name, condition a kept row meets) of every quarantining test. A test may give a condition
    for the quarantine that is not a plain row condition (a uniqueness test keeps the first row of
    each key: a window expression), through ``quarantine_condition()``."""
    out = []
    for c in checks:
        if not getattr(c, "quarantine", False):
            continue
        condition = c.quarantine_condition() if hasattr(c, "quarantine_condition") else c.row_condition()
        if condition:
            out.append((c.name, condition))
    return out


def mark_quarantine(checks: Sequence[Any], df: DataFrame) -> DataFrame | None:
    """``df`` with the names of the quarantining tests each row fails in ``_tl_violations``
    (empty for a row that passes them all), or None when no test quarantines."""
    from pyspark.sql import functions as F

    rules = quarantine_rules(checks)
    if not rules:
        return None
    # One SQL expression, parsed once: built from Column objects (a Python lambda for the filter)
    # the same expression took ~35 ms more of the driver's time per run, in py4j calls.
    # (A declared test's name is [A-Za-z0-9_]; a hand-written test's is quoted all the same.)
    flags = ", ".join(f"CASE WHEN NOT coalesce(({cond}), false) THEN {sql_literal(name)} END" for name, cond in rules)
    return df.withColumn(VIOLATIONS_COLUMN, F.expr(f"filter(array({flags}), _tl_rule -> _tl_rule IS NOT NULL)"))


def split_marked(marked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(rows that pass every quarantining test, rows that fail at least one - keeping the names
    of the tests they fail) of a frame marked by :func:`mark_quarantine`."""
    from pyspark.sql import functions as F

    good = marked.where(F.size(VIOLATIONS_COLUMN) == 0).drop(VIOLATIONS_COLUMN)
    return good, marked.where(F.size(VIOLATIONS_COLUMN) > 0)


def quarantine_counts(marked: DataFrame, rules: Sequence[str]) -> tuple[int, int, dict[str, int]]:
    """(rows, rows quarantined, rows failing each rule) of a marked frame in one pass - a row
    can fail several rules. :func:`evaluate_checks_marked` counts them with the tests instead."""
    from pyspark.sql import functions as F

    bad = F.size(VIOLATIONS_COLUMN) > 0
    exprs = [F.count(F.lit(1)).alias("__all"), F.count_if(bad).alias("__bad")] + [
        column.alias(alias) for alias, column in rule_counts(rules).items()]
    row = marked.agg(*exprs).collect()[0].asDict()
    return int(row["__all"]), int(row["__bad"]), by_rule(row, rules)


def rule_counts(rules: Sequence[str]) -> dict[str, Any]:
    """{alias: rows of a marked frame failing the rule} for each quarantining rule."""
    from pyspark.sql import functions as F

    return {f"__q{i}": F.sum(F.array_contains(VIOLATIONS_COLUMN, rule).cast("int")) for i, rule in enumerate(rules)}


def by_rule(row: dict[str, Any], rules: Sequence[str]) -> dict[str, int]:
    return {rule: int(row.get(f"__q{i}") or 0) for i, rule in enumerate(rules)}
