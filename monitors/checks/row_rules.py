"""Row-level declared tests: each compiles to one SQL condition a passing row meets, may
``quarantine`` the rows that fail it, and is computed in the one Spark pass every test shares.

    Range("fare_amount", 2.5, 400, max_fail_rate=0.01)
    AllowedValues("payment_type", ["card", "cash", "app"])
    Pattern("code", r"^[A-Z]{3}-\\d{2}$", severity="warn")
    NotNull("passenger_count", quarantine=True)
    Expression("tip_le_3x_fare", "tip_amount <= fare_amount * 3", quarantine=True)
    Finite("fare_amount")            # no NaN or +/-infinity
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracelake.lineage.record.checks import CheckContext, CheckResult
from tracelake.monitors.checks.base import DeclaredTest, RowRule, sql_column, sql_literal

__all__ = ["AllowedValues", "Expression", "Finite", "NotNull", "NullRate", "Pattern", "Range"]


@dataclass
class Range(RowRule):
    """Values within ``[min, max]`` (either bound optional); nulls pass (use NotNull for those)."""

    column: str
    min: float | None = None
    max: float | None = None

    def default_name(self) -> str:
        return f"{self.column}_range"

    def default_description(self) -> str:
        return f"{self.column} within [{'' if self.min is None else self.min} .. {'' if self.max is None else self.max}]"

    def row_condition(self) -> str:
        col = sql_column(self.column)
        parts = ([f"{col} >= {sql_literal(self.min)}"] if self.min is not None else []) + (
            [f"{col} <= {sql_literal(self.max)}"] if self.max is not None else [])
        return f"{col} IS NULL OR ({' AND '.join(parts) or 'true'})"

    def aggregates(self) -> dict[str, str]:
        col = sql_column(self.column)
        return {"min": f"min({col})", "max": f"max({col})"}

    def observed_detail(self, stats: dict[str, Any]) -> str:
        return f"observed range [{stats.get('min')} .. {stats.get('max')}]"


@dataclass
class AllowedValues(RowRule):
    column: str
    values: Sequence[Any]

    def default_name(self) -> str:
        return f"{self.column}_allowed"

    def default_description(self) -> str:
        return f"{self.column} in {list(self.values)}"

    def row_condition(self) -> str:
        col = sql_column(self.column)
        return f"{col} IS NULL OR {col} IN ({', '.join(sql_literal(v) for v in self.values)})"

    def aggregates(self) -> dict[str, str]:
        col = sql_column(self.column)
        allowed = ", ".join(sql_literal(v) for v in self.values)
        return {"unexpected": f"slice(array_distinct(collect_list(CASE WHEN {col} NOT IN ({allowed}) "
                              f"THEN substring(CAST({col} AS STRING), 1, 100) END)), 1, 5)"}

    def observed_detail(self, stats: dict[str, Any]) -> str:
        return f"unexpected values {stats.get('unexpected')}" if stats.get("unexpected") else ""


@dataclass
class Pattern(RowRule):
    column: str
    regex: str

    def __post_init__(self) -> None:
        re.compile(self.regex)  # a bad pattern fails at definition time
        super().__post_init__()

    def default_name(self) -> str:
        return f"{self.column}_pattern"

    def default_description(self) -> str:
        return f"{self.column} matches /{self.regex}/"

    def row_condition(self) -> str:
        col = sql_column(self.column)
        return f"{col} IS NULL OR {col} RLIKE {sql_literal(self.regex)}"


@dataclass(init=False)
class NotNull(RowRule):
    columns: Sequence[str] = ()

    def __init__(self, *columns: str, **options: Any):  # NotNull("a", "b", quarantine=True)
        if not columns:
            raise ValueError("NotNull needs at least one column")
        self.columns = list(columns)
        RowRule.__init__(self, **options)

    def default_name(self) -> str:
        return f"{'_'.join(self.columns)}_not_null"

    def default_description(self) -> str:
        return f"{', '.join(self.columns)} present"

    def row_condition(self) -> str:
        return " AND ".join(f"{sql_column(c)} IS NOT NULL" for c in self.columns)


@dataclass
class Finite(RowRule):
    """No NaN and no +/-infinity (a division by zero upstream, a sentinel value): nulls pass."""

    column: str

    def default_name(self) -> str:
        return f"{self.column}_finite"

    def default_description(self) -> str:
        return f"{self.column} is a finite number (no NaN, no infinity)"

    def row_condition(self) -> str:
        col = sql_column(self.column)
        return (f"{col} IS NULL OR (NOT isnan({col}) AND {col} != double('infinity') "
                f"AND {col} != double('-infinity'))")


@dataclass(init=False)
class Expression(RowRule):
    condition: str = ""

    def __init__(self, name: str, condition: str, **options: Any):  # Expression("name", "sql condition")
        self.condition = condition
        RowRule.__init__(self, name=name, **options)

    def default_description(self) -> str:
        return self.condition

    def row_condition(self) -> str:
        return self.condition


@dataclass
class NullRate(DeclaredTest):
    """At most ``max_rate`` of a column missing (a table-level rate, not a row rule)."""

    column: str
    max_rate: float
    severity: str = field(default="warn", kw_only=True)

    def default_name(self) -> str:
        return f"{self.column}_null_rate"

    def default_description(self) -> str:
        return f"at most {self.max_rate:.1%} of {self.column} missing"

    def aggregates(self) -> dict[str, str]:
        return {"rate": f"avg(CASE WHEN {sql_column(self.column)} IS NULL THEN 1.0 ELSE 0.0 END)"}

    def evaluate(self, ctx: CheckContext, stats: dict[str, Any]) -> CheckResult:
        rate = float(stats.get("rate") or 0.0)
        return self._result(rate <= self.max_rate, observed_value=rate, observed_text=f"{rate:.2%} null",
                            threshold_value=self.max_rate, threshold_text=f"<= {self.max_rate:.2%}")
