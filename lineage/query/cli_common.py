"""What the query command groups share: one-line errors for user mistakes, the time span of a
command, the check that a table exists, and the shape every command's parser ends with."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tracelake.lineage.cli_support import CliError, add_json_flag, check_span, iso_time, lake_for
from tracelake.lineage.query.runs import RunNotFound, parse_when
from tracelake.lineage.query.slices import SliceError

if TYPE_CHECKING:
    from tracelake.lineage.lakehouse import Lakehouse

__all__ = ["STATUSES", "Command", "add_span", "guarded", "json_command", "known_table", "span_and_lake", "time_span"]

Command = Callable[[argparse.Namespace], int]

STATUSES = ["started", "succeeded", "failed", "skipped", "abandoned"]


def guarded(fn: Command) -> Command:
    """User mistakes (unknown run, bad predicate, bad time) become one-line errors."""
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (RunNotFound, SliceError, ValueError) as exc:
            raise CliError(str(exc).strip("'\"")) from None
    wrapper.__name__ = fn.__name__
    return wrapper


def time_span(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    """(since, until) of a command; --until must come after --since."""
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    check_span(since, until)
    return parse_when(since), parse_when(until)


def known_table(lake: Lakehouse, table: str) -> None:
    """A data table of this lakehouse, or one line listing them (before anything is read)."""
    from tracelake.lineage.query.sql import data_tables

    tables = data_tables(lake)
    if table not in tables:
        raise CliError(f"no table {table!r} in {lake.settings.home}; tables: {', '.join(sorted(tables)) or 'none yet'}")


def span_and_lake(args: argparse.Namespace) -> tuple[datetime | None, datetime | None, Lakehouse]:
    """(since, until, lakehouse) of a command, with its ``--table`` (when it has one) known to the
    lakehouse; the time span is checked first, before the lakehouse is opened."""
    since, until = time_span(args)
    lake: Lakehouse = lake_for(args)
    if getattr(args, "table", None) is not None:
        known_table(lake, args.table)
    return since, until, lake


def add_span(parser: argparse.ArgumentParser, since: str | None = None, until: str | None = None) -> None:
    """``--since`` and ``--until`` (ISO times), with these help texts (None: none)."""
    parser.add_argument("--since", type=iso_time, help=since)
    parser.add_argument("--until", type=iso_time, help=until)


def json_command(parser: argparse.ArgumentParser, func: Command, **defaults: Any) -> None:
    """The end of every parser that answers: ``--json`` (listed last in its help), then what runs it."""
    add_json_flag(parser)
    parser.set_defaults(func=func, **defaults)
