"""Shared plumbing for ``tracelake`` subcommands: one-line errors, argument types, tables, ``--json``.

Bad input costs one line on stderr and exit code 2, and is found before anything expensive
starts: argument *types* check syntax and ranges while argparse parses (``--limit -1``,
``--retain-days nan``, a run id that cannot be one, a drift window that cannot be), so a command
body only ever sees values it can use; names that need the lakehouse (a component, a table, a
slice) are checked by the command before it starts Spark.

This module is what command groups import from. The pieces live beside it, one concern each:
``cli_args`` (errors and argument types), ``cli_text`` (how answers read) and ``cli_paths``
(where a command may write); here are the flags every command shares and the lakehouse it asks.
"""

from __future__ import annotations

import argparse

from tracelake.lineage.cli_args import (
    MAX_WINDOW_DAYS,
    CliError,
    OneLineErrorParser,
    as_of,
    check_span,
    count_or_all,
    drift_reference,
    drift_window,
    float_in,
    home_dir,
    int_in,
    iso_date,
    iso_time,
    non_negative_float,
    port,
    positive_int,
    record_id,
    run_id,
    run_or_table_version,
    run_or_uuid,
    table_name,
    text_arg,
)
from tracelake.lineage.cli_paths import output_dir, output_file
from tracelake.lineage.cli_text import emit, fmt_time, format_table, plural, progress_note, short

__all__ = [
    "MAX_WINDOW_DAYS",
    "CliError",
    "OneLineErrorParser",
    "add_home_flag",
    "add_json_flag",
    "as_of",
    "check_span",
    "count_or_all",
    "drift_reference",
    "drift_window",
    "emit",
    "float_in",
    "fmt_time",
    "format_table",
    "int_in",
    "iso_date",
    "iso_time",
    "lake_for",
    "non_negative_float",
    "output_dir",
    "output_file",
    "plural",
    "port",
    "positive_int",
    "progress_note",
    "record_id",
    "run_id",
    "run_or_table_version",
    "run_or_uuid",
    "short",
    "table_name",
    "text_arg",
]


def lake_for(args: argparse.Namespace):
    """The lakehouse a command asks about; one clear line when ``--home`` holds none."""
    from tracelake.lineage.lakehouse import NotALakehouse, open_lakehouse

    try:
        return open_lakehouse(getattr(args, "home", None), must_exist=True)
    except (NotALakehouse, ValueError) as exc:
        raise CliError(str(exc)) from None


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: absent here, the value given before the subcommand (or the top-level False) stands.
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable JSON instead of a table")


def add_home_flag(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--home`` on the top-level parser (default None) and on every subcommand (absent: kept)."""
    parser.add_argument("--home", type=home_dir, default=None if top else argparse.SUPPRESS,
                        help="lakehouse root (default: $TRACELAKE_HOME or ./lakehouse)")

