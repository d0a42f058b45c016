"""``tracelake flag``, ``unflag``, ``flags``, ``review`` and ``upstream-checks``: people mark
outputs wrong, and the record says which runs behind them to look at first."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from tracelake.lineage.cli_support import (
    as_of,
    emit,
    format_table,
    int_in,
    lake_for,
    plural,
    positive_int,
    record_id,
    table_name,
    text_arg,
)
from tracelake.lineage.query.cli_common import add_span, guarded, json_command, known_table, span_and_lake

__all__ = ["register"]


@guarded
def _flag(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import flag

    lake = lake_for(args)
    known_table(lake, args.table)
    rec = flag(lake, args.table, args.where, args.reason, by=args.by, as_of=args.as_of)
    emit(args, rec, f"flagged {plural(rec['rows'], 'row')} of {rec['table_name']}@v{rec['table_version']} "
                    f"(written by {plural(len(rec['writer_run_ids']), 'run')}) as {rec['flag_id']}")
    return 0


@guarded
def _unflag(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import unflag

    rec = unflag(lake_for(args), args.flag_id, args.reason or "", by=args.by)
    emit(args, rec, f"withdrew flag {args.flag_id}")
    return 0


@guarded
def _flags(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import active_flags

    since, until, lake = span_and_lake(args)
    rows = active_flags(lake, since=since, until=until, table=args.table)
    emit(args, rows, format_table(rows, ["flag_id", "table_name", "table_version", "rows", "predicate", "reason",
                                         "flagged_by", "flagged_at"], {"predicate": 40, "reason": 30},
                                  {"table_name": "table", "table_version": "version", "flagged_by": "by",
                                   "flagged_at": "flagged"})
         if rows else "no active flags")
    return 0


@guarded
def _review(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.review import lineage_evidence, review

    since, until, lake = span_and_lake(args)
    evidence = (lineage_evidence, *[e for e in args.review_evidence if e is not lineage_evidence])
    entries = review(lake, since=since, until=until, table=args.table, window=args.window, evidence=evidence)
    shown = entries[: args.top]
    rows = [{"rank": e.rank, "component": e.component, "partition_key": e.partition_key, "run_id": e.run_id,
             "score": e.score, "evidence": e.weight, "why": e.why} for e in shown]
    text = format_table(rows, ["rank", "component", "partition_key", "run_id", "score", "evidence", "why"],
                        {"why": 90}, {"partition_key": "partition"}) if rows else "no active flags to review"
    if shown and shown[0].tied_with:
        text += (f"\nThe first {len(shown[0].tied_with) + 1} are tied: the record holds no evidence that separates "
                 "them - look at each.")
    elif shown:
        text += f"\nLook first at #{shown[0].rank}: {shown[0].component} {shown[0].partition_key or ''}".rstrip()
    emit(args, [e.to_dict() for e in shown], text)
    return 0


@guarded
def _upstream_checks(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import upstream_checks

    since, until, lake = span_and_lake(args)
    rows = upstream_checks(lake, args.table, args.where, since=since, until=until, as_of=args.as_of)
    emit(args, rows, format_table(rows, ["component", "partition_key", "check", "severity", "observed", "threshold",
                                         "run_id"], headers={"partition_key": "partition"})
         if rows else "no failed or warning checks upstream of that slice")
    return 0


def register(sub: argparse._SubParsersAction, review_evidence: Sequence[Any] = ()) -> None:
    """``review_evidence``: extra evidence sources for ``review`` (see ``cli.register``)."""
    _register_flagging(sub)
    _register_review(sub, review_evidence)


def _register_flagging(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flag", help="mark rows of a table as wrong")
    p.add_argument("table", type=table_name)
    p.add_argument("--where", type=text_arg("--where"), required=True)
    p.add_argument("--reason", type=text_arg("--reason"), required=True)
    p.add_argument("--by", type=text_arg("--by"), help="who flags (default: your user name)")
    p.add_argument("--as-of", type=as_of)
    json_command(p, _flag)

    p = sub.add_parser("unflag", help="withdraw a flag")
    p.add_argument("flag_id", type=record_id("a flag id", "tracelake flags"))
    p.add_argument("--reason")
    p.add_argument("--by", type=text_arg("--by"))
    json_command(p, _unflag)

    p = sub.add_parser("flags", help="active flags")
    p.add_argument("--table", type=table_name)
    add_span(p)
    json_command(p, _flags)


def _register_review(sub: argparse._SubParsersAction, review_evidence: Sequence[Any]) -> None:
    p = sub.add_parser("review", help="rank the runs behind flagged outputs: where to look first")
    p.add_argument("--table", type=table_name)
    add_span(p, "only flags raised at or after this time")
    p.add_argument("--window", type=int_in(0, 366, "partitions"), default=3,
                   help="partitions each side that count as the same period")
    p.add_argument("--top", type=positive_int, default=10)
    json_command(p, _review, review_evidence=tuple(review_evidence))

    p = sub.add_parser("upstream-checks", help="declared tests that failed or warned upstream of a slice")
    p.add_argument("table", type=table_name)
    p.add_argument("--where", type=text_arg("--where"), default="true")
    add_span(p)
    p.add_argument("--as-of", type=as_of)
    json_command(p, _upstream_checks)
