"""``tracelake`` query subcommands: runs, run show, history, diff, trace, impact, flag, review,
upstream-checks, sql, spark-sql, reproduce. All but ``sql``/``spark-sql`` answer without Spark."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tracelake.lineage.cli_support import CliError, add_json_flag, emit, format_table, short
from tracelake.lineage.lakehouse import open_lakehouse
from tracelake.lineage.query.runs import RunNotFound, get_run, list_runs, parse_when
from tracelake.lineage.query.slices import SliceError

__all__ = ["register"]


def _lake(args: argparse.Namespace):
    return open_lakehouse(getattr(args, "home", None))


def _guard(fn):
    """User mistakes (unknown run, bad predicate, bad time) become one-line errors."""
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (RunNotFound, SliceError, ValueError) as exc:
            raise CliError(str(exc)) from None
    return wrapper


RUN_COLUMNS = ["run_id", "component", "partition_key", "status", "started_at", "seconds", "output_version",
               "output_rows"]


def _runs(args: argparse.Namespace) -> int:
    try:
        frame = list_runs(_lake(args), component=args.component, status=args.status, partition=args.partition,
                          since=parse_when(args.since), until=parse_when(args.until), limit=args.limit)
    except (RunNotFound, ValueError) as exc:
        raise CliError(str(exc)) from None
    rows = []
    for rec in frame.to_dict("records") if not frame.empty else []:
        ms = rec.get("duration_ms")
        rec["seconds"] = None if ms is None or ms != ms else round(ms / 1000, 1)
        rows.append({k: rec.get(k) for k in RUN_COLUMNS + ["error_message"]})
    human = format_table(rows, RUN_COLUMNS + ["error_message"], {"error_message": 60}) if rows else "no runs recorded yet"
    emit(args, rows, human)
    return 0


def _describe_run(rec: dict[str, Any]) -> str:
    lines = [f"run {rec['run_id']}  {rec['component']}  partition={rec.get('partition_key') or '-'}  "
             f"status={rec['status'].upper()}"]
    lines.append(f"  started {rec.get('started_at')}  ended {rec.get('ended_at') or '-'}  "
                 f"({(rec.get('duration_ms') or 0) / 1000:.1f} s)  dagster run {rec.get('dagster_run_id') or '-'}")
    if rec.get("error_message"):
        lines.append(f"  error   {rec.get('error_type')}: {rec['error_message']}")
    lines.append(f"  code    version {rec.get('code_version')}  source sha256 {short(rec.get('source_hash'), 16)}  "
                 f"git {short(rec.get('git_commit'), 12)}{' (dirty)' if rec.get('git_dirty') else ''}")
    lines.append("  inputs")
    for inp in rec.get("inputs") or []:
        if inp.get("kind") == "model":
            lines.append(f"    model {inp['name']} v{inp.get('model_version')}  (MLflow run {inp.get('mlflow_run_id')})")
        else:
            parts = inp.get("partitions") or []
            span = f" partitions {parts[0]}..{parts[-1]} ({len(parts)})" if parts else ""
            missing = inp.get("missing_partitions") or []
            lines.append(f"    {inp['name']}@v{inp.get('version')}{span}"
                         + (f"  MISSING {len(missing)}: {', '.join(missing[:4])}" if missing else ""))
    if rec.get("output_version") is not None:
        lines.append(f"  output  {rec.get('output_table')}@v{rec['output_version']}  rows={rec.get('output_rows')}  "
                     f"files={rec.get('output_files')}  schema {short(rec.get('output_schema_hash'), 16)}")
    for model in rec.get("models") or []:
        lines.append(f"  model   {model['role']} {model['name']} v{model['version']}")
    metrics = rec.get("metrics") or {}
    if metrics:
        lines.append("  metrics " + ", ".join(f"{k}={short(v)}" for k, v in sorted(metrics.items())))
    for check in rec.get("checks") or []:
        lines.append(f"  check   {'PASS' if check['passed'] else 'FAIL'} {check['check_name']} "
                     f"observed={short(check.get('observed_value'))} threshold={check.get('threshold_text')}")
    if rec.get("config"):
        lines.append(f"  config  {json.dumps(rec['config'], sort_keys=True)[:300]}")
    if rec.get("mlflow_run_url"):
        lines.append(f"  mlflow  {rec['mlflow_run_url']}")
    return "\n".join(lines)


def _run_show(args: argparse.Namespace) -> int:
    try:
        rec = get_run(_lake(args), args.run_id)
    except RunNotFound as exc:
        raise CliError(str(exc)) from None
    emit(args, rec, _describe_run(rec))
    return 0


@_guard
def _history(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.history import component_history

    rows = component_history(_lake(args), args.component, since=parse_when(args.since), until=parse_when(args.until),
                             status=args.status)
    table = []
    for r in rows:
        metrics = ", ".join(f"{k}={short(v, 8)}" for k, v in sorted(r["metrics"].items())[:4])
        table.append({**r, "changed": ",".join(r["changed"]) or "", "metrics": metrics})
    cols = ["run_id", "partition_key", "status", "started_at", "seconds", "output_version", "output_rows", "changed",
            "metrics"]
    emit(args, rows, format_table(table, cols, {"metrics": 70}) if rows else f"no runs of {args.component}")
    return 0


@_guard
def _diff(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.history import diff_runs

    d = diff_runs(_lake(args), args.run_a, args.run_b)
    lines = [f"a: {d['a']['run_id']} {d['a']['component']} {d['a']['partition_key']} ({d['a']['status']})",
             f"b: {d['b']['run_id']} {d['b']['component']} {d['b']['partition_key']} ({d['b']['status']})"]
    if d.get("warning"):
        lines.append(f"warning: {d['warning']}")
    for section in ("code", "config", "inputs", "metrics", "libraries"):
        items = d[section]
        lines.append(f"{section}: {'same' if not items else ''}")
        for key, val in items.items():
            extra = f"  (delta {short(val['delta'])})" if section == "metrics" and val.get("delta") is not None else ""
            lines.append(f"  {key}: {short(val['a'], 60)} -> {short(val['b'], 60)}{extra}")
    schema = d["schema"]
    lines.append("schema: " + ("same" if not any(schema.values()) else
                               f"added {schema['added']}, removed {schema['removed']}, changed {list(schema['changed'])}"))
    lines.append(f"output: {d['output']['a']} -> {d['output']['b']}")
    emit(args, d, "\n".join(lines))
    return 0


def _render_trace(args: argparse.Namespace, result: Any) -> str:
    from tracelake.lineage.query.render import trace_dot, trace_mermaid, trace_tree

    fmt = getattr(args, "format", "tree")
    if fmt == "mermaid":
        return trace_mermaid(result)
    if fmt == "dot":
        return trace_dot(result)
    return trace_tree(result, max_siblings=None if getattr(args, "full", False) else 3)


@_guard
def _trace(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.trace import trace

    result = trace(_lake(args), args.table, args.where, as_of=args.as_of)
    emit(args, result.to_dict(), _render_trace(args, result))
    return 0


@_guard
def _impact(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.impact import impact

    result = impact(_lake(args), args.target)
    summary = result.summary()
    start = result.nodes[result.start]
    lines = [f"impact of {start.label} run {start.id} ({start.table}@v{start.version}, {start.rows} rows):"]
    if not summary:
        lines.append("  nothing downstream consumed its rows")
    else:
        lines.append(format_table(summary, ["component", "runs", "rows", "first", "last"]))
        if result.models():
            lines.append("model versions affected: " + ", ".join(result.models()))
        if args.runs:
            runs = sorted(result.affected_runs(), key=lambda n: (n.depth, n.component or "", n.partition_key or ""))
            lines.append(format_table([n.__dict__ for n in runs],
                                      ["depth", "component", "partition_key", "id", "status", "rows"]))
    emit(args, result.to_dict(), "\n".join(lines))
    return 0


@_guard
def _flag(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import flag

    rec = flag(_lake(args), args.table, args.where, args.reason, by=args.by, as_of=args.as_of)
    emit(args, rec, f"flagged {rec['rows']} rows of {rec['table_name']}@v{rec['table_version']} "
                    f"(written by {len(rec['writer_run_ids'])} runs) as {rec['flag_id']}")
    return 0


@_guard
def _unflag(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import unflag

    rec = unflag(_lake(args), args.flag_id, args.reason or "", by=args.by)
    emit(args, rec, f"withdrew flag {args.flag_id}")
    return 0


@_guard
def _flags(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import active_flags

    rows = active_flags(_lake(args), since=parse_when(args.since), until=parse_when(args.until), table=args.table)
    emit(args, rows, format_table(rows, ["flag_id", "table_name", "table_version", "rows", "predicate", "reason",
                                         "flagged_by", "flagged_at"], {"predicate": 50, "reason": 40})
         if rows else "no active flags")
    return 0


@_guard
def _review(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import review

    entries = review(_lake(args), since=parse_when(args.since), until=parse_when(args.until), table=args.table,
                     window=args.window)
    rows = [{"rank": i + 1, "run_id": e.run_id, "component": e.component, "partition_key": e.partition_key,
             "score": e.score, "why": e.why} for i, e in enumerate(entries[: args.top])]
    emit(args, [e.__dict__ | {"why": e.why} for e in entries[: args.top]],
         format_table(rows, ["rank", "component", "partition_key", "run_id", "score", "why"], {"why": 110})
         if rows else "no active flags to review")
    return 0


@_guard
def _upstream_checks(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import upstream_checks

    rows = upstream_checks(_lake(args), args.table, args.where, since=parse_when(args.since),
                           until=parse_when(args.until), as_of=args.as_of)
    emit(args, rows, format_table(rows, ["component", "partition_key", "check", "severity", "observed", "threshold",
                                         "run_id"]) if rows else "no failed or warning checks upstream of that slice")
    return 0


def _sql(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.sql import sql_session

    spark = sql_session(_lake(args))
    try:
        frame = spark.sql(args.query)
    except Exception as exc:  # Spark's analysis errors: report the first line, exit 2
        raise CliError(f"Spark SQL: {str(exc).strip().splitlines()[0][:300]}") from None
    rows = [r.asDict(recursive=True) for r in frame.limit(args.limit).collect()]
    emit(args, rows, format_table(rows, frame.columns, {c: 60 for c in frame.columns}) if rows else "(no rows)")
    return 0


def _spark_sql(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.sql import sql_session

    spark = sql_session(_lake(args))
    print("tracelake Spark SQL: every table by name, audit tables as audit.<name>; end statements with ';', "
          "quit with Ctrl-D", file=sys.stderr)
    buffer = ""
    while True:
        try:
            line = input("sql> " if not buffer else "...> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        buffer += line + "\n"
        if not line.rstrip().endswith(";"):
            continue
        statement, buffer = buffer.strip().rstrip(";"), ""
        try:
            frame = spark.sql(statement)
            rows = [r.asDict(recursive=True) for r in frame.limit(args.limit).collect()]
            print(format_table(rows, frame.columns, {c: 60 for c in frame.columns}) if rows else "(no rows)")
        except Exception as exc:  # keep the shell alive; show the error's first line
            print(f"error: {str(exc).strip().splitlines()[0][:300]}", file=sys.stderr)


@_guard
def _reproduce(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.sql import reproduce_to

    manifest = reproduce_to(_lake(args), args.run_id, args.out)
    lines = [f"inputs of run {args.run_id} ({manifest['component']} {manifest['partition_key'] or ''}) saved to {args.out}"]
    for inp in manifest["inputs"]:
        if inp["kind"] == "model":
            lines.append(f"  model {inp['name']} v{inp['version']}  ({inp['uri']})")
        else:
            lines.append(f"  {inp['name']}@v{inp['version']}  {inp['rows']} rows -> {inp['file']}")
    emit(args, manifest, "\n".join(lines))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list component runs, newest first")
    p.add_argument("--component", help="only this component")
    p.add_argument("--status", choices=["started", "succeeded", "failed", "skipped", "abandoned"])
    p.add_argument("--partition", help="only this partition key")
    p.add_argument("--since", help="started at or after (ISO date/time, UTC)")
    p.add_argument("--until", help="started before (ISO date/time, UTC)")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0 = all)")
    add_json_flag(p)
    p.set_defaults(func=_runs)

    run = sub.add_parser("run", help="one component run")
    run_sub = run.add_subparsers(dest="run_command", required=True)
    show = run_sub.add_parser("show", help="everything recorded about a run")
    show.add_argument("run_id")
    add_json_flag(show)
    show.set_defaults(func=_run_show)

    p = sub.add_parser("history", help="runs of one component over time, and where code/config changed")
    p.add_argument("component")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--status", choices=["started", "succeeded", "failed", "skipped", "abandoned"])
    add_json_flag(p)
    p.set_defaults(func=_history)

    p = sub.add_parser("diff", help="what differs between two runs: code, config, inputs, schema, metrics")
    p.add_argument("run_a")
    p.add_argument("run_b")
    add_json_flag(p)
    p.set_defaults(func=_diff)

    p = sub.add_parser("trace", help="backward lineage of a slice of a table, through every upstream run")
    p.add_argument("table")
    p.add_argument("--where", default="true", help="SQL predicate selecting the rows (default: all)")
    p.add_argument("--as-of", help="table version number or ISO time (default: latest)")
    p.add_argument("--format", choices=["tree", "mermaid", "dot"], default="tree")
    p.add_argument("--full", action="store_true", help="do not collapse runs of the same component in the tree")
    add_json_flag(p)
    p.set_defaults(func=_trace)

    p = sub.add_parser("impact", help="forward impact of a run (or TABLE@VERSION): every downstream run and row")
    p.add_argument("target", help="a run id, or TABLE@VERSION")
    p.add_argument("--runs", action="store_true", help="list every affected run, not only the summary")
    add_json_flag(p)
    p.set_defaults(func=_impact)

    p = sub.add_parser("flag", help="mark rows of a table as wrong")
    p.add_argument("table")
    p.add_argument("--where", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who flags (default: your user name)")
    p.add_argument("--as-of")
    add_json_flag(p)
    p.set_defaults(func=_flag)

    p = sub.add_parser("unflag", help="withdraw a flag")
    p.add_argument("flag_id")
    p.add_argument("--reason")
    p.add_argument("--by")
    add_json_flag(p)
    p.set_defaults(func=_unflag)

    p = sub.add_parser("flags", help="active flags")
    p.add_argument("--table")
    p.add_argument("--since")
    p.add_argument("--until")
    add_json_flag(p)
    p.set_defaults(func=_flags)

    p = sub.add_parser("review", help="rank the runs behind flagged outputs: where to look first")
    p.add_argument("--table")
    p.add_argument("--since", help="only flags raised at or after this time")
    p.add_argument("--until")
    p.add_argument("--window", type=int, default=3, help="partitions each side that count as the same period")
    p.add_argument("--top", type=int, default=10)
    add_json_flag(p)
    p.set_defaults(func=_review)

    p = sub.add_parser("upstream-checks", help="declared tests that failed or warned upstream of a slice")
    p.add_argument("table")
    p.add_argument("--where", default="true")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--as-of")
    add_json_flag(p)
    p.set_defaults(func=_upstream_checks)

    p = sub.add_parser("sql", help="run Spark SQL with every table registered (time travel included)")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=100)
    add_json_flag(p)
    p.set_defaults(func=_sql)

    p = sub.add_parser("spark-sql", help="an interactive Spark SQL shell over the lakehouse")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=_spark_sql)

    p = sub.add_parser("reproduce", help="save the exact inputs a run read (Parquet + manifest)")
    p.add_argument("run_id")
    p.add_argument("--out", required=True, help="directory to write into")
    add_json_flag(p)
    p.set_defaults(func=_reproduce)
