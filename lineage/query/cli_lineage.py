"""``tracelake trace`` and ``tracelake impact``: lineage backward from a slice of a table, and
forward from a run."""

from __future__ import annotations

import argparse
from typing import Any

from tracelake.lineage.cli_support import (
    as_of,
    emit,
    format_table,
    lake_for,
    plural,
    run_or_table_version,
    table_name,
    text_arg,
)
from tracelake.lineage.query.cli_common import guarded, json_command, known_table

__all__ = ["register"]


def _render_trace(args: argparse.Namespace, result: Any) -> str:
    from tracelake.lineage.query.render import trace_dot, trace_mermaid, trace_tree

    fmt = getattr(args, "format", "tree")
    if fmt == "mermaid":
        return trace_mermaid(result)
    if fmt == "dot":
        return trace_dot(result)
    return trace_tree(result, max_siblings=None if getattr(args, "full", False) else 3)


@guarded
def _trace(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.trace import trace

    lake = lake_for(args)
    known_table(lake, args.table)
    result = trace(lake, args.table, args.where, as_of=args.as_of)
    emit(args, result.to_dict(), _render_trace(args, result))
    return 0


@guarded
def _impact(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.impact import impact

    lake = lake_for(args)
    if "@" in args.target:
        known_table(lake, args.target.split("@")[0])
    result = impact(lake, args.target)
    summary = result.summary()
    start = result.nodes[result.start]
    rows = "" if start.rows is None else f", {plural(start.rows, 'row')}"
    lines = [f"impact of {start.label} run {start.id} ({start.table}@v{start.version}{rows}):"]
    if not summary:
        lines.append("  nothing downstream consumed its rows")
    else:
        lines.append(format_table(summary, ["component", "runs", "rows", "first", "last"]))
        if result.models():
            lines.append("model versions affected: " + ", ".join(result.models()))
        if args.runs:
            runs = sorted(result.affected_runs(), key=lambda n: (n.depth, n.component or "", n.partition_key or ""))
            lines.append(format_table([n.__dict__ for n in runs],
                                      ["depth", "component", "partition_key", "id", "status", "rows"],
                                      headers={"partition_key": "partition", "id": "run_id"}))
    emit(args, result.to_dict(), "\n".join(lines))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="backward lineage of a slice of a table, through every upstream run")
    p.add_argument("table", type=table_name)
    p.add_argument("--where", type=text_arg("--where"), default="true",
                   help="SQL predicate selecting the rows (default: all)")
    p.add_argument("--as-of", type=as_of, help="table version number or ISO time (default: latest)")
    p.add_argument("--format", choices=["tree", "mermaid", "dot"], default="tree")
    p.add_argument("--full", action="store_true", help="do not collapse runs of the same component in the tree")
    json_command(p, _trace)

    p = sub.add_parser("impact", help="forward impact of a run (or TABLE@VERSION): every downstream run and row")
    p.add_argument("target", type=run_or_table_version, help="a run id, or TABLE@VERSION")
    p.add_argument("--runs", action="store_true", help="list every affected run, not only the summary")
    json_command(p, _impact)
