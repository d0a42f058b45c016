"""``tracelake checks``: declared test results, newest first."""

from __future__ import annotations

import argparse

from tracelake.lineage import CHECK_RESULTS
from tracelake.lineage.cli_support import CliError, add_json_flag, count_or_all, emit, format_table, lake_for

__all__ = ["register"]


def _lake(args: argparse.Namespace):
    return lake_for(args)


def _checks(args: argparse.Namespace) -> int:
    lake = _lake(args)
    frame = lake.store.read(CHECK_RESULTS)
    if args.component is not None:
        known = set(frame["component"]) if not frame.empty else set()
        if args.component not in known:
            runs = lake.store.component_runs(include_open=True)
            if runs.empty or args.component not in set(runs["component"]):
                raise CliError(f"no component {args.component!r}; components with declared test results: "
                               f"{', '.join(sorted(known)) or 'none yet'}")
    if not frame.empty:
        if args.component:
            frame = frame[frame["component"] == args.component]
        if args.failed:
            frame = frame[~frame["passed"].astype(bool)]
        frame = frame.sort_values("evaluated_at", ascending=False)
        frame = frame.head(args.limit) if args.limit else frame
    rows = [] if frame.empty else frame.to_dict("records")
    for r in rows:
        r["result"] = "PASS" if r["passed"] else ("FAIL" if r["severity"] == "error" else "WARN")
        r["observed"] = r.get("observed_text") or r.get("observed_value")
    # Newest first; when each was evaluated is in --json (evaluated_at), the runs' times in `tracelake runs`.
    human = format_table(rows, ["component", "partition_key", "check_name", "result", "observed", "threshold_text"],
                         {"observed": 32, "threshold_text": 20, "check_name": 26},
                         {"partition_key": "partition", "check_name": "check", "threshold_text": "threshold"}) \
        if rows else ("no failed or warned checks" if args.failed else "no check results")
    emit(args, rows, human)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("checks", help="declared test results, newest first")
    p.add_argument("--component")
    p.add_argument("--failed", action="store_true", help="only failed or warned")
    p.add_argument("--limit", type=count_or_all, default=50, help="at most this many (default 50; 0 = all)")
    add_json_flag(p)
    p.set_defaults(func=_checks)
