"""``tracelake`` query subcommands: runs, run show, history, diff, trace, impact, flag, review,
upstream-checks, sql, spark-sql, reproduce. All but ``sql``/``spark-sql`` answer without Spark.

Each group of commands lives in its own module (``cli_runs``, ``cli_history``, ``cli_lineage``,
``cli_flags``, ``cli_sql``); this one puts them together."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from tracelake.lineage.query import cli_flags, cli_history, cli_lineage, cli_runs, cli_sql

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, review_evidence: Sequence[Any] = ()) -> None:
    """``review_evidence``: extra evidence sources for ``review`` from the layers above (the
    monitors' drift and anomalies); the audit record's own evidence is always used."""
    # This order is the order `tracelake --help` lists the commands in.
    cli_runs.register(sub)
    cli_history.register(sub)
    cli_lineage.register(sub)
    cli_flags.register(sub, review_evidence)
    cli_sql.register(sub)
