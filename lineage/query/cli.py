"""``tracelake`` query subcommands: runs, run show, history, diff, trace, impact, flag, review,
upstream-checks, sql, spark-sql, reproduce. All but ``sql``/``spark-sql`` answer without Spark."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from tracelake.lineage.cli_support import (
    CliError,
    add_json_flag,
    as_of,
    check_span,
    count_or_all,
    emit,
    fmt_time,
    format_table,
    int_in,
    iso_time,
    lake_for,
    output_dir,
    plural,
    port,
    positive_int,
    progress_note,
    record_id,
    run_id,
    run_or_table_version,
    run_or_uuid,
    short,
    table_name,
    text_arg,
)
from tracelake.lineage.query.runs import RunNotFound, get_run, list_runs, parse_when
from tracelake.lineage.query.slices import SliceError

__all__ = ["register"]


def _lake(args: argparse.Namespace):
    return lake_for(args)


def _guard(fn):
    """User mistakes (unknown run, bad predicate, bad time) become one-line errors."""
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (RunNotFound, SliceError, ValueError) as exc:
            raise CliError(str(exc).strip("'\"")) from None
    wrapper.__name__ = fn.__name__
    return wrapper


def _when(text: str | None):
    return parse_when(text) if text is not None else None


def _span(args: argparse.Namespace):
    """(since, until) of a command; --until must come after --since."""
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    check_span(since, until)
    return _when(since), _when(until)


def _known_table(lake, table: str) -> None:
    """A data table of this lakehouse, or one line listing them (before anything is read)."""
    from tracelake.lineage.query.sql import data_tables

    try:
        tables = data_tables(lake)
    except NotImplementedError:   # an object store: the table is looked up when read
        return
    if table not in tables:
        raise CliError(f"no table {table!r} in {lake.settings.home}; tables: {', '.join(sorted(tables)) or 'none yet'}")


RUN_COLUMNS = ["run_id", "component", "partition_key", "status", "started_at", "seconds", "output_version",
               "output_rows"]
RUN_HEADERS = {"partition_key": "partition", "started_at": "started", "seconds": "secs", "output_version": "version",
               "output_rows": "rows"}


@_guard
def _runs(args: argparse.Namespace) -> int:
    since, until = _span(args)
    lake = _lake(args)
    if args.partition is not None:
        known = set(lake.store.component_runs(include_open=True).get("partition_key", []))
        if args.partition not in known:
            parts = sorted(str(p) for p in known if p is not None)
            hint = f"partitions with runs: {parts[0]} .. {parts[-1]} ({len(parts)})" if parts else "no partitioned runs"
            raise CliError(f"no runs of partition {args.partition!r}; {hint}")
    frame = list_runs(lake, component=args.component, status=args.status, partition=args.partition,
                      since=since, until=until, limit=args.limit)
    rows = []
    for rec in frame.to_dict("records") if not frame.empty else []:
        ms = rec.get("duration_ms")
        rec["seconds"] = None if ms is None or ms != ms else round(ms / 1000, 1)
        rows.append({k: rec.get(k) for k in [*RUN_COLUMNS, "error_message"]})
    cols = [*RUN_COLUMNS, *(["error_message"] if any(r.get("error_message") for r in rows) else [])]
    human = format_table(rows, cols, {"error_message": 50}, {**RUN_HEADERS, "error_message": "error"}) \
        if rows else "no runs match" if (args.status or since or until) else "no runs recorded yet"
    emit(args, rows, human)
    return 0


def _describe_run(rec: dict[str, Any]) -> str:
    lines = [f"run {rec['run_id']}  {rec['component']}  partition={rec.get('partition_key') or '-'}  "
             f"status={rec['status'].upper()}"]
    lines.append(f"  started {fmt_time(rec.get('started_at'))}  ended {fmt_time(rec.get('ended_at'))}  "
                 f"({(rec.get('duration_ms') or 0) / 1000:.1f} s)")
    lines.append(f"  dagster run {rec.get('dagster_run_id') or '-'}")
    if rec.get("error_message"):
        lines.append(f"  error   {rec.get('error_type')}: {rec['error_message']}")
    lines.append(f"  code    version {rec.get('code_version')}  source sha256 {short(rec.get('source_hash'), 16)}  "
                 f"git {short(rec.get('git_commit'), 12)}{' (dirty)' if rec.get('git_dirty') else ''}")
    lines.append(f"  openlineage run {_openlineage_id(rec)}")
    tags = rec.get("tags") or {}
    if tags.get("tracelake.external") == "true":   # received over OpenLineage: what was established, how
        lines.append(f"  external {tags.get('openlineage.job')}  verified={tags.get('tracelake.external.verified')}")
        lines += [f"    {k.rsplit('.', 1)[-1]}: {v}" for k, v in sorted(tags.items()) if k.startswith("tracelake.external.")
                  and k not in ("tracelake.external.verified",)]
    lines.append("  inputs")
    for inp in rec.get("inputs") or []:
        if inp.get("kind") == "model":
            lines.append(f"    model {inp['name']} v{inp.get('model_version')}  (MLflow run {inp.get('mlflow_run_id')})")
        else:
            parts = inp.get("partitions") or []
            span = f" partitions {parts[0]}..{parts[-1]} ({plural(len(parts), 'partition')})" if parts else ""
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
    from tracelake.lineage.query.history import split_observed

    for check in rec.get("checks") or []:
        outcome, statistic = split_observed(check.get("observed_text"))
        seen = "; ".join(x for x in (outcome or short(check.get("observed_value")), statistic) if x)
        lines.append(f"  check   {_outcome(check)} {check['check_name']}: {short(seen, 64)}  "
                     f"({check.get('threshold_text')})")
    if rec.get("config"):
        text = json.dumps(rec["config"], sort_keys=True)
        lines.append(f"  config  {short(text, 80)}" + ("  (all of it: --json)" if len(text) > 80 else ""))
    if rec.get("mlflow_run_url"):
        lines.append(f"  mlflow  {rec['mlflow_run_url']}")
    return "\n".join(lines)


def _outcome(check: dict[str, Any]) -> str:
    return "PASS" if check.get("passed") else ("FAIL" if check.get("severity") == "error" else "WARN")


def _openlineage_id(rec: dict[str, Any]) -> str:
    from tracelake.lineage.openlineage.ids import openlineage_run_id

    return rec.get("openlineage_run_id") or openlineage_run_id(rec["run_id"])


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

    since, until = _span(args)
    rows = component_history(_lake(args), args.component, since=since, until=until, status=args.status)
    emit(args, rows, _history_text(args.component, rows) if rows else
         f"no {args.status + ' ' if args.status else ''}runs of {args.component}"
         + (" in that time span" if since or until else ""))
    return 0


def _tests_cell(tests: dict[str, Any]) -> str:
    failed = tests["failed"]
    if not failed and not tests["passed"]:
        return "-"
    if not failed:
        return f"{tests['passed']} ok"
    first = failed[0]
    more = f" +{len(failed) - 1}" if len(failed) > 1 else ""
    return f"{first['result']} {first['check']}{more}"


def _varying_metrics(rows: list[dict[str, Any]], most: int = 3) -> list[str]:
    """The logged metrics that move across these runs (a constant says nothing), most varying first."""
    values: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r["metrics"].items():
            if isinstance(v, (int, float)):
                values.setdefault(k, []).append(float(v))
    spread = {}
    for k, vs in values.items():
        if len(set(vs)) > 1:
            scale = max(abs(x) for x in vs) or 1.0
            spread[k] = (max(vs) - min(vs)) / scale
    return sorted(spread, key=lambda k: (-spread[k], k))[:most]


def _change_text(what: str, change: dict[str, Any]) -> str:
    if what == "schema":
        parts = [f"+{', +'.join(change['added'])}" if change["added"] else "",
                 f"-{', -'.join(change['removed'])}" if change["removed"] else "",
                 f"~{', ~'.join(change['changed'])}" if change["changed"] else ""]
        return "schema " + " ".join(p for p in parts if p)
    a, b = change["a"], change["b"]
    if isinstance(a, dict) or isinstance(b, dict):
        a, b = a or {}, b or {}
        keys = sorted(set(a) | set(b))
        return f"{what} " + ", ".join(f"{k} {short(a.get(k), 24)} -> {short(b.get(k), 24)}" for k in keys[:4]) \
            + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
    return f"{what} {short(a, 40)} -> {short(b, 40)}"


def _history_text(component: str, rows: list[dict[str, Any]]) -> str:
    metrics = _varying_metrics(rows)
    table = []
    for r in rows:
        row = {**r, "tests": _tests_cell(r["tests"])}
        row["metrics"] = ", ".join(f"{k}={short(r['metrics'].get(k), 8)}" for k in metrics if k in r["metrics"])
        table.append(row)
    cols = ["run_id", "partition_key", "status", "started_at", "seconds", "output_version", "output_rows", "tests"]
    if metrics:
        cols.append("metrics")
    lines = [format_table(table, cols, {"tests": 34, "metrics": 40}, RUN_HEADERS)]
    changed = [r for r in rows if r["changes"]]
    if changed:
        lines.append("changed since the previous run:")
        for r in changed:
            what = "; ".join(_change_text(k, v) for k, v in r["changes"].items())
            lines.append(f"  {r['partition_key'] or '-'}  {r['run_id']}: {what}")
    else:
        lines.append(f"code, config, schema, libraries and models read: the same in all {plural(len(rows), 'run')}")
    failing = [r for r in rows if r["tests"]["failed"]]
    if failing:
        lines.append("declared tests that failed or warned:")
        for r in failing:
            for t in r["tests"]["failed"]:
                seen = "; ".join(str(x) for x in (t["observed"], t.get("statistic")) if x is not None)
                lines.append(f"  {r['partition_key'] or '-'}  {t['result']} {t['check']}: {short(seen, 64)} "
                             f"({t['threshold']})")
    return "\n".join(lines)


@_guard
def _diff(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.history import diff_runs

    d = diff_runs(_lake(args), args.run_a, args.run_b)
    emit(args, d, _diff_text(d))
    return 0


def _side(head: dict[str, Any]) -> str:
    return (f"{head['run_id']}  {head['component']} {head['partition_key'] or ''}  {head['status']}  "
            f"started {fmt_time(head.get('started_at'))}")


def _test_side(t: dict[str, Any] | None) -> str:
    if t is None:
        return "not run"
    observed = short(t.get("observed"), 44)
    return f"{t['result']} ({observed})" if observed != "-" else t["result"]


def _statistic_change(check: str, a: str | None, b: str | None) -> str:
    """``fare_amount_range observed range: [5.03 .. 139.42] -> [493.0 .. 9848.0]``."""
    import re

    label = re.compile(r"^(observed [a-z ]+?) (\[.*\]|\S+)$")
    ma, mb = label.match(a or ""), label.match(b or "")
    if ma and mb and ma.group(1) == mb.group(1):
        return f"{check} {ma.group(1)}: {ma.group(2)} -> {mb.group(2)}"
    return f"{check}: {short(a, 50)} -> {short(b, 50)}"


def _diff_text(d: dict[str, Any]) -> str:
    lines = [f"a: {_side(d['a'])}", f"b: {_side(d['b'])}"]
    if d.get("warning"):
        lines.append(f"warning: {d['warning']}")
    same = [s for s in ("code", "config", "libraries") if not d[s]]
    schema = d["schema"]
    if not any(schema.values()):
        same.append("schema")
    if same:
        lines.append(f"same: {', '.join(same)}")
    for section in ("code", "config", "libraries"):
        if d[section]:
            lines.append(f"{section}:")
            lines += [f"  {k}: {short(v['a'], 50)} -> {short(v['b'], 50)}" for k, v in d[section].items()]
    if any(schema.values()):
        lines.append(f"schema: added {schema['added']}, removed {schema['removed']}, changed {list(schema['changed'])}")
    if d["inputs"]:
        lines.append("inputs:")
        lines += [f"  {k}: {v['a'] or '-'} -> {v['b'] or '-'}" for k, v in d["inputs"].items()]
    data = d["data"]
    rows = data["rows"]
    lines.append("data:")
    change = ""
    if rows.get("delta") is not None:
        pct = f", {rows['change']:+.1%}" if rows.get("change") is not None else ""
        change = f"  ({rows['delta']:+d}{pct})"
    nothing = "nothing written"
    lines.append(f"  output: {d['output']['a'] or nothing} -> {d['output']['b'] or nothing}{change}")
    q = data.get("quarantined_rows")
    if q and (q["a"] or 0) != (q["b"] or 0):
        lines.append(f"  quarantined rows: {q['a'] or 0} -> {q['b'] or 0}")
    for name, obs in data["observed"].items():
        lines.append("  " + _statistic_change(name, obs["a"], obs["b"]))
    tests = d["tests"]
    if tests:
        changed = [t for t in tests if t["changed"]]
        lines.append("declared tests" + (f" ({plural(len(changed), 'outcome')} changed):" if changed else
                                         ": the same outcomes in both runs"))
        quiet = 0
        for t in tests:
            a, b = t["a"] or {}, t["b"] or {}
            if not t["changed"] and a.get("result") == "PASS" and b.get("result") == "PASS":
                quiet += 1
                continue
            mark = "*" if t["changed"] else " "
            lines.append(f" {mark}{t['check']}: {_test_side(t['a'])} -> {_test_side(t['b'])}")
        if quiet:
            lines.append(f"  ({plural(quiet, 'other test')} passed in both runs)")
    else:
        lines.append("declared tests: none recorded for either run")
    if d["metrics"]:
        lines.append("metrics:")
        for k, v in d["metrics"].items():
            extra = f"  ({short(v['delta'])})" if v.get("delta") is not None else ""
            lines.append(f"  {k}: {short(v['a'])} -> {short(v['b'])}{extra}")
    return "\n".join(lines)


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

    lake = _lake(args)
    _known_table(lake, args.table)
    result = trace(lake, args.table, args.where, as_of=args.as_of)
    emit(args, result.to_dict(), _render_trace(args, result))
    return 0


@_guard
def _impact(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.impact import impact

    lake = _lake(args)
    if "@" in args.target:
        _known_table(lake, args.target.split("@")[0])
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


@_guard
def _flag(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import flag

    lake = _lake(args)
    _known_table(lake, args.table)
    rec = flag(lake, args.table, args.where, args.reason, by=args.by, as_of=args.as_of)
    emit(args, rec, f"flagged {plural(rec['rows'], 'row')} of {rec['table_name']}@v{rec['table_version']} "
                    f"(written by {plural(len(rec['writer_run_ids']), 'run')}) as {rec['flag_id']}")
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

    since, until = _span(args)
    lake = _lake(args)
    if args.table is not None:
        _known_table(lake, args.table)
    rows = active_flags(lake, since=since, until=until, table=args.table)
    emit(args, rows, format_table(rows, ["flag_id", "table_name", "table_version", "rows", "predicate", "reason",
                                         "flagged_by", "flagged_at"], {"predicate": 40, "reason": 30},
                                  {"table_name": "table", "table_version": "version", "flagged_by": "by",
                                   "flagged_at": "flagged"})
         if rows else "no active flags")
    return 0


@_guard
def _review(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.review import lineage_evidence, review

    since, until = _span(args)
    lake = _lake(args)
    if args.table is not None:
        _known_table(lake, args.table)
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


@_guard
def _upstream_checks(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.flags import upstream_checks

    since, until = _span(args)
    lake = _lake(args)
    _known_table(lake, args.table)
    rows = upstream_checks(lake, args.table, args.where, since=since, until=until, as_of=args.as_of)
    emit(args, rows, format_table(rows, ["component", "partition_key", "check", "severity", "observed", "threshold",
                                         "run_id"], headers={"partition_key": "partition"})
         if rows else "no failed or warning checks upstream of that slice")
    return 0


def _sql(args: argparse.Namespace) -> int:
    import logging

    from tracelake.lineage.query.sql import ask, cli_session
    from tracelake.lineage.query.sql_guard import SqlRefused, judge

    logging.getLogger("sqlglot").setLevel(logging.ERROR)   # its parser notes are not the user's business
    try:
        statements = judge(args.query, admin=args.admin)  # refuse before starting anything expensive
    except SqlRefused as exc:
        raise CliError(str(exc)) from None
    if args.admin and not (args.reason and args.reason.strip()):
        raise CliError("--admin needs --reason: say why, it goes into the audit record")
    lake = _lake(args)
    _known_sql_tables(lake, statements)
    with _quiet_jvm():
        spark = cli_session(lake, progress_note)   # the lakehouse's Connect server when one is up
        try:
            frame = ask(lake, spark, args.query, admin=args.admin, reason=args.reason)
            rows = [r.asDict(recursive=True) for r in frame.limit(args.limit).collect()] if frame is not None else []
        except SqlRefused as exc:
            raise CliError(str(exc)) from None
        except Exception as exc:  # Spark's analysis and runtime errors (1/0, a bad CAST): one line, exit 2
            raise CliError(f"Spark SQL: {_first_line(exc)}") from None
    columns = frame.columns if frame is not None else []
    emit(args, rows, format_table(rows, columns, dict.fromkeys(columns, 60)) if rows else "(no rows)")
    return 0


def _known_sql_tables(lake, statements) -> None:
    """Every table a question names must be one this lakehouse registers (checked before Spark)."""
    import sqlglot
    import sqlglot.expressions as exp

    from tracelake.lineage.query.sql import data_tables

    try:
        known = {t.lower() for t in data_tables(lake)}
    except NotImplementedError:   # an object store: Spark says what is missing
        return
    known |= {f"audit.{t}".lower() for t in lake.store.tables()} | {"run_inputs"}
    from tracelake.lineage.record.audit_tables import CORE_AUDIT_TABLES

    known |= {f"audit.{t.name}".lower() for t in CORE_AUDIT_TABLES}
    for statement in statements:
        if statement.kind != "question" or not statement.tables:
            continue
        try:
            ctes = {c.alias_or_name.lower() for tree in sqlglot.parse(statement.text, read="spark") if tree
                    for c in tree.find_all(exp.CTE)}
        except sqlglot.errors.ParseError:
            ctes = set()
        for ref in statement.tables:
            name = ref.lower().removeprefix("spark_catalog.").removeprefix("default.")
            if name in ctes or name in known:
                continue
            data = sorted(t for t in known if "." not in t and t != "run_inputs")
            raise CliError(f"no table {ref!r} in {lake.settings.home}; tables: {', '.join(data) or 'none yet'} "
                           "(audit tables as audit.<name>; `tracelake sql \"SHOW TABLES\"` lists them)")


def _first_line(exc: BaseException) -> str:
    """Spark's error as one line: its condition and message, not the JVM stack or the SQL echo."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    first = lines[0]
    hint = next((line for line in lines[1:] if line.startswith(("Use ", "If necessary", "Did you mean"))), None)
    return (first + (f" ({hint})" if hint and len(first) < 200 else ""))[:300]


class _quiet_jvm:
    """While Spark answers a CLI question, the JVM's own log lines (a stack trace for 1/0, warnings
    at start-up) go to a log file in the lakehouse instead of the terminal: the command reports
    errors itself, in one line. Only when stderr is not a terminal (scripts, tests) - at a
    terminal the log is useful and nobody parses it."""

    def __enter__(self):
        import os

        self.saved = None
        if sys.stderr.isatty() or os.environ.get("TRACELAKE_SPARK_STDERR") == "1":
            return self
        try:
            from pyspark.sql import SparkSession

            if SparkSession.getActiveSession() is not None:  # started before: its stderr is what it is
                return self
            import tempfile

            sys.stderr.flush()
            self.log = tempfile.TemporaryFile(prefix="tracelake-spark-")
            self.saved = os.dup(2)
            os.dup2(self.log.fileno(), 2)   # inherited by the JVM when it starts
        except (ImportError, OSError):
            self.saved = None
        return self

    def __exit__(self, *exc) -> None:
        import os

        if self.saved is not None:
            sys.stderr.flush()
            os.dup2(self.saved, 2)
            os.close(self.saved)
            self.log.close()


def _spark_sql(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.sql import ask, cli_session

    if args.serve:
        return _serve_connect(args)
    lake = _lake(args)
    spark = cli_session(lake, progress_note)
    print("tracelake Spark SQL (read-only): every table by name, audit tables as audit.<name>; end statements "
          "with ';', quit with Ctrl-D", file=sys.stderr)
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
            frame = ask(lake, spark, statement)
            rows = [r.asDict(recursive=True) for r in frame.limit(args.limit).collect()] if frame is not None else []
            print(format_table(rows, frame.columns, dict.fromkeys(frame.columns, 60)) if rows else "(no rows)")
        except Exception as exc:  # keep the shell alive; show the error's first line
            print(f"error: {_first_line(exc)}", file=sys.stderr)


def _serve_connect(args: argparse.Namespace) -> int:
    """`tracelake spark-sql --serve`: a Spark Connect server for this lakehouse (lineage/connect.py)."""
    from tracelake.lineage.query.sql import serve_lakehouse

    try:
        return serve_lakehouse(_lake(args), args.port)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None


@_guard
def _reproduce(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.sql import reproduce_to
    from tracelake.lineage.settings import load_settings

    # Where it may write is decided before the lakehouse is opened: a file, a non-empty folder
    # (without --force), anything inside the lakehouse and system folders are refused.
    target = output_dir(args.out, force=args.force, inside=load_settings(home=getattr(args, "home", None)).home)
    lake = _lake(args)
    get_run(lake, args.run_id)   # an unknown run creates no folder
    manifest = reproduce_to(lake, args.run_id, str(target))
    lines = [f"inputs of run {args.run_id} ({manifest['component']} {manifest['partition_key'] or ''}) "
             f"saved to {target}"]
    for inp in manifest["inputs"]:
        if inp["kind"] == "model":
            lines.append(f"  model {inp['name']} v{inp['version']}  ({inp['uri']})")
        else:
            lines.append(f"  {inp['name']}@v{inp['version']}  {plural(inp['rows'], 'row')} -> {inp['file']}")
    emit(args, manifest, "\n".join(lines))
    return 0


_STATUSES = ["started", "succeeded", "failed", "skipped", "abandoned"]


def register(sub: argparse._SubParsersAction, review_evidence: Sequence[Any] = ()) -> None:
    """``review_evidence``: extra evidence sources for ``review`` from the layers above (the
    monitors' drift and anomalies); the audit record's own evidence is always used."""
    where = text_arg("--where")
    p = sub.add_parser("runs", help="list component runs, newest first")
    p.add_argument("--component", help="only this component")
    p.add_argument("--status", choices=_STATUSES)
    p.add_argument("--partition", help="only this partition key")
    p.add_argument("--since", type=iso_time, help="started at or after (ISO date/time, UTC)")
    p.add_argument("--until", type=iso_time, help="started before (ISO date/time, UTC)")
    p.add_argument("--limit", type=count_or_all, default=50, help="at most this many (default 50; 0 = all)")
    add_json_flag(p)
    p.set_defaults(func=_runs)

    run = sub.add_parser("run", help="one component run")
    run_sub = run.add_subparsers(dest="run_command", required=True)
    show = run_sub.add_parser("show", help="everything recorded about a run")
    show.add_argument("run_id", type=run_or_uuid, help="a Tracelake run id, or its OpenLineage run id (UUID)")
    add_json_flag(show)
    show.set_defaults(func=_run_show)

    p = sub.add_parser("history", help="runs of one component over time, and where code/config changed")
    p.add_argument("component")
    p.add_argument("--since", type=iso_time)
    p.add_argument("--until", type=iso_time)
    p.add_argument("--status", choices=_STATUSES)
    add_json_flag(p)
    p.set_defaults(func=_history)

    p = sub.add_parser("diff", help="what differs between two runs: code, config, inputs, schema, tests, data")
    p.add_argument("run_a", type=run_id)
    p.add_argument("run_b", type=run_id)
    add_json_flag(p)
    p.set_defaults(func=_diff)

    p = sub.add_parser("trace", help="backward lineage of a slice of a table, through every upstream run")
    p.add_argument("table", type=table_name)
    p.add_argument("--where", type=where, default="true", help="SQL predicate selecting the rows (default: all)")
    p.add_argument("--as-of", type=as_of, help="table version number or ISO time (default: latest)")
    p.add_argument("--format", choices=["tree", "mermaid", "dot"], default="tree")
    p.add_argument("--full", action="store_true", help="do not collapse runs of the same component in the tree")
    add_json_flag(p)
    p.set_defaults(func=_trace)

    p = sub.add_parser("impact", help="forward impact of a run (or TABLE@VERSION): every downstream run and row")
    p.add_argument("target", type=run_or_table_version, help="a run id, or TABLE@VERSION")
    p.add_argument("--runs", action="store_true", help="list every affected run, not only the summary")
    add_json_flag(p)
    p.set_defaults(func=_impact)

    p = sub.add_parser("flag", help="mark rows of a table as wrong")
    p.add_argument("table", type=table_name)
    p.add_argument("--where", type=where, required=True)
    p.add_argument("--reason", type=text_arg("--reason"), required=True)
    p.add_argument("--by", type=text_arg("--by"), help="who flags (default: your user name)")
    p.add_argument("--as-of", type=as_of)
    add_json_flag(p)
    p.set_defaults(func=_flag)

    p = sub.add_parser("unflag", help="withdraw a flag")
    p.add_argument("flag_id", type=record_id("a flag id", "tracelake flags"))
    p.add_argument("--reason")
    p.add_argument("--by", type=text_arg("--by"))
    add_json_flag(p)
    p.set_defaults(func=_unflag)

    p = sub.add_parser("flags", help="active flags")
    p.add_argument("--table", type=table_name)
    p.add_argument("--since", type=iso_time)
    p.add_argument("--until", type=iso_time)
    add_json_flag(p)
    p.set_defaults(func=_flags)

    p = sub.add_parser("review", help="rank the runs behind flagged outputs: where to look first")
    p.add_argument("--table", type=table_name)
    p.add_argument("--since", type=iso_time, help="only flags raised at or after this time")
    p.add_argument("--until", type=iso_time)
    p.add_argument("--window", type=int_in(0, 366, "partitions"), default=3,
                   help="partitions each side that count as the same period")
    p.add_argument("--top", type=positive_int, default=10)
    add_json_flag(p)
    p.set_defaults(func=_review, review_evidence=tuple(review_evidence))

    p = sub.add_parser("upstream-checks", help="declared tests that failed or warned upstream of a slice")
    p.add_argument("table", type=table_name)
    p.add_argument("--where", type=where, default="true")
    p.add_argument("--since", type=iso_time)
    p.add_argument("--until", type=iso_time)
    p.add_argument("--as-of", type=as_of)
    add_json_flag(p)
    p.set_defaults(func=_upstream_checks)

    p = sub.add_parser("sql", help="ask Spark SQL (read-only) with every table registered, time travel included")
    p.add_argument("query")
    p.add_argument("--limit", type=positive_int, default=100, help="at most this many rows (default 100)")
    p.add_argument("--admin", action="store_true", help="run an administrative statement (recorded in audit.admin_actions)")
    p.add_argument("--reason", help="why (required with --admin)")
    add_json_flag(p)
    p.set_defaults(func=_sql)

    p = sub.add_parser("spark-sql", help="an interactive Spark SQL shell over the lakehouse")
    p.add_argument("--limit", type=positive_int, default=100)
    p.add_argument("--serve", action="store_true", help="run a Spark Connect server for this lakehouse instead "
                   "(foreground, Ctrl-C stops it); `tracelake sql` then answers in seconds")
    p.add_argument("--port", type=port, default=15002, help="its port on 127.0.0.1 (default 15002)")
    p.set_defaults(func=_spark_sql)

    p = sub.add_parser("reproduce", help="save the exact inputs a run read (Parquet + manifest)")
    p.add_argument("run_id", type=run_id)
    p.add_argument("--out", required=True, help="a new or empty folder to write into (outside the lakehouse)")
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty (overwriting the "
                                                         "files this command writes: <input>.parquet, manifest.json)")
    add_json_flag(p)
    p.set_defaults(func=_reproduce)
