"""``tracelake sql``, ``spark-sql`` and ``reproduce``: the commands that start Spark (a read-only
question, an interactive shell or a Connect server) and the one that saves a run's exact inputs."""

from __future__ import annotations

import argparse
import sys

from tracelake.lineage.cli_support import (
    CliError,
    emit,
    format_table,
    lake_for,
    output_dir,
    plural,
    port,
    positive_int,
    progress_note,
    run_id,
)
from tracelake.lineage.query.cli_common import guarded, json_command
from tracelake.lineage.query.runs import get_run

__all__ = ["register"]


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
    lake = lake_for(args)
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

    known = {t.lower() for t in data_tables(lake)}
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
    lake = lake_for(args)
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
        return serve_lakehouse(lake_for(args), args.port)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None


@guarded
def _reproduce(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.sql import reproduce_to
    from tracelake.lineage.settings import load_settings

    # Where it may write is decided before the lakehouse is opened: a file, a non-empty folder
    # (without --force), anything inside the lakehouse and system folders are refused.
    target = output_dir(args.out, force=args.force, inside=load_settings(home=getattr(args, "home", None)).home)
    lake = lake_for(args)
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sql", help="ask Spark SQL (read-only) with every table registered, time travel included")
    p.add_argument("query")
    p.add_argument("--limit", type=positive_int, default=100, help="at most this many rows (default 100)")
    p.add_argument("--admin", action="store_true", help="run an administrative statement (recorded in audit.admin_actions)")
    p.add_argument("--reason", help="why (required with --admin)")
    json_command(p, _sql)

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
    json_command(p, _reproduce)
