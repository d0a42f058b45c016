"""The SQL surface is for questions: read-only unless an administrator says otherwise, out loud.

``tracelake sql`` and ``tracelake spark-sql`` run Spark SQL over the lakehouse with every table
registered by name. By default a statement must be a question - ``SELECT``/``WITH`` (time
travel included), ``SHOW``, ``DESCRIBE``, ``EXPLAIN`` - over tables of this lakehouse and
Tracelake's own table functions. Refused, with one line saying why and what to do instead:

- anything that writes or changes state: DML (``INSERT``, ``UPDATE``, ``DELETE``, ``MERGE``),
  DDL (``CREATE``, ``DROP``, ``ALTER``), ``VACUUM``, ``OPTIMIZE``, ``RESTORE``, ``CACHE``,
  ``ADD JAR``, ``SET``/``RESET`` (a ``SET`` can switch off Delta's retention safety check);
- reads outside the lakehouse: path-based sources (``text.`/etc/hostname```, ``parquet.`...```,
  ``delta.`...```), file-reading table functions, Java reflection (``reflect``, ``java_method``).

Two independent checks: the statement is parsed (sqlglot, Spark dialect) and judged by what it
is, and a question that passes is then asked of Spark for the files it would read
(``DataFrame.inputFiles()``), every one of which must lie under the lakehouse root - so a
statement the parser misreads still cannot read outside.

``tracelake sql --admin --reason "..."`` runs one administrative statement (a repair, a schema
change) after recording who ran what and why in the chained ``admin_actions`` table; even then
retention is only ever shortened through ``tracelake vacuum``, and the audit tables are never
written through SQL - only the journal writes them. An administrative statement names tables of
this lakehouse by name: one that names a table or folder by path (``delta.`<home>/audit/...```,
``LOCATION '...'``, ``OPTIONS (path ...)``, ``INSERT ... DIRECTORY``, ``LOAD DATA``, ``COPY``),
switches the current database (``USE audit`` would make ``DELETE FROM check_results`` an audit
write), is beyond the parser and names a path or the audit database (``ADD JAR /tmp/x.jar``,
``MSCK REPAIR TABLE audit.flags``), or spells the lakehouse's own folder anywhere in its text is
refused, so the audit tables cannot be reached under another name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # sqlglot is imported when a statement is judged, not when the CLI starts
    from sqlglot.expressions import Expr

__all__ = ["SAFE_FUNCTIONS", "SqlRefused", "Statement", "judge"]

SAFE_FUNCTIONS = {"tracelake_trace", "tracelake_impact", "range", "explode", "inline", "posexplode", "stack"}
_QUESTIONS = re.compile(r"^\s*(show|describe|desc|explain)\b", re.I)
_DANGEROUS_CALLS = {"reflect", "java_method", "read_files", "read_kafka", "read_statestore"}
_FORMATS = {"text", "csv", "json", "parquet", "orc", "avro", "delta", "binaryfile", "jdbc", "image", "libsvm", "xml"}
_NEVER_EVEN_FOR_ADMIN = re.compile(
    r"\bvacuum\b|retentionDurationCheck|logRetentionDuration|deletedFileRetentionDuration|\brestore\b", re.I)
_ALLOWED_DBS = {"", "default", "audit", "spark_catalog"}
_AUDIT_VIEWS = {"run_inputs"}   # the session's view over audit.component_runs
_PATH_KEYS = {"path", "paths", "location"}
_AUDIT_ONLY_BY_JOURNAL = "the audit tables are written only by Tracelake's journal, never through SQL"
_STATEMENTS: tuple[type[Expr], ...] | None = None


class SqlRefused(ValueError):
    """A statement the SQL surface will not run (said in one line)."""


@dataclass(frozen=True)
class Statement:
    text: str
    kind: str          # "question" | "admin"
    tables: tuple[str, ...]


def _statement_types() -> tuple[type[Expr], ...]:
    import sqlglot.expressions as exp

    names = ("Insert", "Delete", "Update", "Merge", "Create", "Drop", "Alter", "Set", "Command", "Cache", "Uncache",
             "Analyze", "Use", "Describe", "Select", "Union", "With", "Subquery", "Pragma", "Transaction", "Commit",
             "Rollback", "TruncateTable", "Copy", "LoadData", "Refresh")
    return tuple(getattr(exp, n) for n in names if hasattr(exp, n))


def _split(query: str) -> list[Expr]:
    import sqlglot

    try:
        return [s for s in sqlglot.parse(query, read="spark") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise SqlRefused(f"cannot parse the statement: {str(exc).splitlines()[0][:160]}") from None


def _table_refs(tree: Expr) -> list[str]:
    import sqlglot.expressions as exp

    refs = []
    for table in tree.find_all(exp.Table):
        db = (table.db or "").lower()
        name = table.name or ""
        if isinstance(table.this, (exp.Func, exp.Anonymous)):
            fn = (table.this.name if isinstance(table.this, exp.Anonymous) else table.this.sql_name()).lower()
            if fn not in SAFE_FUNCTIONS:
                raise SqlRefused(f"table function {fn}() is not allowed here: only Tracelake's own "
                                 f"({', '.join(sorted(SAFE_FUNCTIONS))})")
            continue
        if db in _FORMATS or "/" in name or ":" in name:
            raise SqlRefused(f"reading {db + '.' if db else ''}`{name}` is a read outside the lakehouse: query "
                             "tables by name (`tracelake sql \"SHOW TABLES\"` lists them)")
        if db not in _ALLOWED_DBS:
            raise SqlRefused(f"unknown database {db!r}: lakehouse tables are by name, audit tables as audit.<name>")
        refs.append(f"{db + '.' if db and db != 'default' else ''}{name}")
    for call in tree.find_all(exp.Anonymous):
        if call.name.lower() in _DANGEROUS_CALLS:
            raise SqlRefused(f"{call.name}() is not allowed in Tracelake SQL")
    return refs


def judge(query: str, *, admin: bool = False, home: str | None = None) -> list[Statement]:
    """The statements of ``query``, or :class:`SqlRefused` naming the first that may not run.
    ``home``: the lakehouse root, which an administrative statement may not spell (see above)."""
    import sqlglot.expressions as exp

    global _STATEMENTS
    if _STATEMENTS is None:
        _STATEMENTS = _statement_types()
    if not query or not query.strip():
        raise SqlRefused("the statement is empty")
    statements = []
    for tree in _split(query):
        text = tree.sql(dialect="spark")
        if isinstance(tree, exp.Command) and _QUESTIONS.match(f"{tree.this} {tree.expression}".strip()):
            statements.append(Statement(text, "question", ()))
            continue
        if isinstance(tree, (exp.Select, exp.Union, exp.Subquery, exp.Describe)) or (
                isinstance(tree, exp.With) and isinstance(tree.this, exp.Select)):
            statements.append(Statement(text, "question", tuple(_table_refs(tree))))
            continue
        if not isinstance(tree, _STATEMENTS):
            raise SqlRefused(f"cannot read {text[:60]!r} as a SQL statement; start with SELECT, SHOW or DESCRIBE")
        if not admin:
            verb = (tree.key if not isinstance(tree, exp.Command) else str(tree.this)).upper()
            raise SqlRefused(f"{verb} is refused: the SQL surface is read-only (SELECT, SHOW, DESCRIBE, EXPLAIN). "
                             "Administrative statements need `tracelake sql --admin --reason \"...\"`; history is "
                             "shortened only by `tracelake vacuum`")
        if _NEVER_EVEN_FOR_ADMIN.search(text):
            raise SqlRefused("retention and history are never changed through SQL, even --admin: use "
                             "`tracelake vacuum` (guarded) or the table properties' documented procedure")
        _refuse_admin_reach(tree, text)
        statements.append(Statement(text, "admin", ()))
    if admin and home:
        _refuse_own_folder(query, home)
    return statements


def _refuse_admin_reach(tree: Expr, text: str) -> None:
    """An administrative statement may change data tables named as such, nothing else: not the
    audit tables under any name, and nothing addressed by path (the audit tables are folders
    under ``<home>/audit``; a path is how a name check is walked around)."""
    import sqlglot.expressions as exp

    if isinstance(tree, exp.Use):
        raise SqlRefused("USE is refused even with --admin: it changes what unqualified names mean; name the "
                         "table instead (data tables by name, audit tables are never written through SQL)")
    for table in tree.find_all(exp.Table):
        db, name = (table.db or "").lower(), table.name or ""
        if db == "audit" or name.lower() in _AUDIT_VIEWS:
            raise SqlRefused(_AUDIT_ONLY_BY_JOURNAL)
        if db in _FORMATS or "/" in name or ":" in name:
            raise SqlRefused(f"{db + '.' if db else ''}`{name}` names a table by path: even --admin, tables are "
                             "named (`tracelake sql \"SHOW TABLES\"`); " + _AUDIT_ONLY_BY_JOURNAL)
        if db not in _ALLOWED_DBS:
            raise SqlRefused(f"unknown database {db!r}: lakehouse tables are by name")
    path_nodes = tuple(getattr(exp, n) for n in ("LocationProperty", "Directory", "LoadData", "Copy") if hasattr(exp, n))
    for node in tree.walk():
        if isinstance(node, path_nodes) or (isinstance(node, exp.AlterSet) and node.args.get("location")) or (
                isinstance(node, exp.Property) and node.name.lower() in _PATH_KEYS):
            raise SqlRefused("a statement that points at files by path (LOCATION, OPTIONS (path ...), "
                             "INSERT ... DIRECTORY, LOAD DATA, COPY) is refused even with --admin: tables are "
                             "named; " + _AUDIT_ONLY_BY_JOURNAL)
    # Not understood by the parser (``MSCK ...``, ``ADD JAR ...``): its tables cannot be seen, so
    # it may name neither a path nor the audit database.
    if isinstance(tree, exp.Command) and re.search(r"[/:]|\baudit\b|`", text, re.I):
        raise SqlRefused(f"{str(tree.this).upper()} naming a path or the audit database is refused even with "
                         "--admin; " + _AUDIT_ONLY_BY_JOURNAL)


def _refuse_own_folder(query: str, home: str) -> None:
    """Belt and braces, independent of the parser: an administrative statement never spells the
    lakehouse's folder (plain, as a ``file:`` URI or percent-encoded) - tables are named."""
    from urllib.parse import unquote

    root = home.rstrip("/").removeprefix("file://").removeprefix("file:")
    if root and (root in query or root in unquote(query)):
        raise SqlRefused(f"an administrative statement may not name the lakehouse's files ({root}): tables "
                         "are named; " + _AUDIT_ONLY_BY_JOURNAL)
