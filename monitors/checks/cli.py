"""``tracelake checks``: declared test results, newest first."""

from __future__ import annotations

import argparse

from tracelake.lineage import open_lakehouse
from tracelake.lineage.cli_support import add_json_flag, emit, format_table, short

from tracelake.lineage import CHECK_RESULTS

__all__ = ["register"]


def _lake(args: argparse.Namespace):
    return open_lakehouse(getattr(args, "home", None))


def _checks(args: argparse.Namespace) -> int:
    frame = _lake(args).store.read(CHECK_RESULTS)
    if not frame.empty:
        if args.component:
            frame = frame[frame["component"] == args.component]
        if args.failed:
            frame = frame[~frame["passed"].astype(bool)]
        frame = frame.sort_values("evaluated_at", ascending=False).head(args.limit)
    rows = [] if frame.empty else frame.to_dict("records")
    for r in rows:
        r["result"] = "PASS" if r["passed"] else ("FAIL" if r["severity"] == "error" else "WARN")
        r["observed"] = short(r.get("observed_text") or r.get("observed_value"), 70)
    emit(args, rows, format_table(rows, ["evaluated_at", "component", "partition_key", "check_name", "result",
                                         "observed", "threshold_text"], {"observed": 70}) if rows else "no check results")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("checks", help="declared test results, newest first")
    p.add_argument("--component")
    p.add_argument("--failed", action="store_true", help="only failed or warned")
    p.add_argument("--limit", type=int, default=50)
    add_json_flag(p)
    p.set_defaults(func=_checks)
