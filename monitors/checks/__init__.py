"""Declared tests: listed once in a component's definition, run at every materialisation on the
rows about to be written (see ``tracelake.lineage.record.checks`` for how they are run).

Row rules (one SQL condition each, may quarantine failing rows) live in ``row_rules``; tests of
the whole table, its history and its inputs in ``table_rules``.
"""

from tracelake.monitors.checks.base import DeclaredTest, RowRule
from tracelake.monitors.checks.row_rules import AllowedValues, Expression, Finite, NotNull, NullRate, Pattern, Range
from tracelake.monitors.checks.table_rules import (
    ActionLimit,
    InputFreshness,
    RowCount,
    RowCountVsHistory,
    Schema,
    Unique,
)

__all__ = ["ActionLimit", "AllowedValues", "DeclaredTest", "Expression", "Finite", "InputFreshness", "NotNull",
           "NullRate", "Pattern", "Range", "RowCount", "RowCountVsHistory", "RowRule", "Schema", "Unique"]
