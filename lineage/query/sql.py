"""Point-in-time Spark SQL over the whole lakehouse, and reproducing a run's exact inputs.

``sql_session()`` registers every data table by name (``tip_predictions``) and every audit
table under ``audit.`` (``audit.component_runs``) as external Delta tables, so time travel just
works::

    SELECT count(*) FROM trip_features VERSION AS OF 12
    SELECT * FROM tip_predictions TIMESTAMP AS OF '2026-01-20 06:00:00' WHERE pickup_zone = 'Airport'

It also adds ``audit.run_inputs`` (one row per input a run read, at the version read) and two
table functions that answer the lineage questions from SQL::

    SELECT * FROM tracelake_trace('tip_predictions', "pickup_date = '2026-01-14'")
    SELECT * FROM tracelake_impact('01M89FZ4TYSEB82KNH1VRH01SK')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.record.audit_tables import CORE_AUDIT_TABLES
from tracelake.lineage.record.tables import read_version

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["cli_session", "data_tables", "register_tables", "reproduce", "reproduce_to", "sql_session"]


def data_tables(lake: Lakehouse) -> dict[str, str]:
    """Name -> path of every Delta table under ``tables/``."""
    return {name: lake.layout.table(name) for name in lake.layout.delta_tables(lake.layout.tables_root)}


def _register(spark: SparkSession, database: str, name: str, path: str) -> None:
    """External table ``database.name`` -> ``path`` (re-pointed if it was registered elsewhere)."""
    qualified = f"`{database}`.`{name}`"
    if spark.catalog.tableExists(f"`{database}`.`{name}`"):
        location = spark.sql(f"DESCRIBE DETAIL {qualified}").collect()[0]["location"]
        if location.rstrip("/").removeprefix("file:") == path.rstrip("/").removeprefix("file:"):
            return
        # External tables: DROP removes the catalog entry only, never the data.
        spark.sql(f"DROP TABLE {qualified}")
    spark.sql(f"CREATE TABLE {qualified} USING DELTA LOCATION {_sql_string(path)}")


def _sql_string(text: str) -> str:
    """``text`` as a Spark SQL string literal: a lakehouse path may hold ' or \\ (tracelake CLI)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _registered(spark: SparkSession) -> set[tuple[str, str]]:
    """(database, table) of every table the session's catalog already holds: two statements, not
    two per table (over Spark Connect each statement is a round trip)."""
    found = set()
    for database in ("default", "audit"):
        for row in spark.sql(f"SHOW TABLES IN {database}").collect():
            if not row["isTemporary"]:
                found.add((database, row["tableName"]))
    return found


def register_tables(lake: Lakehouse, spark: SparkSession, *, trust_registered: bool = False) -> list[str]:
    """Register every table by name. ``trust_registered``: a name the catalog already holds is
    taken as is (a Connect server started for this lakehouse registered it; locations are not
    re-checked, and the ``inputFiles()`` guard still refuses any file outside the lakehouse)."""
    from deltalake import DeltaTable

    spark.sql("CREATE DATABASE IF NOT EXISTS audit")
    known = _registered(spark) if trust_registered else set()
    names = []
    for name, path in data_tables(lake).items():
        if ("default", name) not in known:
            _register(spark, "default", name, path)
        names.append(name)
    for table in CORE_AUDIT_TABLES:  # the core's tables always resolve, even before their first record
        lake.store.ensure_table(table)
    for name in lake.store.tables():
        path = lake.store.path(name)
        if ("audit", name) in known or DeltaTable.is_deltatable(path):
            if ("audit", name) not in known:
                _register(spark, "audit", name, path)
            names.append(f"audit.{name}")
    spark.sql("""
        CREATE OR REPLACE TEMPORARY VIEW run_inputs AS
        SELECT r.run_id, r.component, r.partition_key, r.status, r.started_at,
               i.kind, i.name AS input_name, i.version AS input_version, i.partitions AS input_partitions,
               i.model_version, r.output_table, r.output_version
        FROM audit.component_runs r LATERAL VIEW explode(r.inputs) AS i
    """)
    return names


def _udtfs(spark: SparkSession, home: str) -> None:
    from pyspark.sql.functions import udtf
    from pyspark.sql.udtf import UserDefinedTableFunction

    schema = ("depth int, kind string, component string, partition_key string, run_id string, status string, "
              "table_name string, table_version bigint, rows bigint, via string, failed_checks string")

    def rows_of(result: Any) -> Any:
        via: dict[str, str] = {}
        for e in result.edges:
            via.setdefault(e.parent if hasattr(result, "roots") else e.child, e.via)
        for n in sorted(result.nodes.values(), key=lambda n: (n.depth, n.id)):
            yield (n.depth, n.kind, n.component, n.partition_key, n.id if n.kind == "run" else None, n.status,
                   n.table, n.version, n.rows, via.get(n.id), json.dumps(n.checks) if n.checks else None)

    class TraceFunction:
        def eval(self, table: str, where: str, as_of: str | None = None):
            from tracelake.lineage import open_lakehouse
            from tracelake.lineage.query.trace import trace

            yield from rows_of(trace(open_lakehouse(home), table, where, as_of=as_of))

    class ImpactFunction:
        def eval(self, target: str):
            from tracelake.lineage import open_lakehouse
            from tracelake.lineage.query.impact import impact

            yield from rows_of(impact(open_lakehouse(home), target))

    for name, cls in (("tracelake_trace", TraceFunction), ("tracelake_impact", ImpactFunction)):
        spark.udtf.register(name, cast(UserDefinedTableFunction, udtf(cls, returnType=schema)))


def sql_session(lake: Lakehouse, url: str | None = None) -> SparkSession:
    """The Spark session with every table registered by name (the journal is flushed first):
    this process's own, or a session on the Spark Connect server at ``url``."""
    lake.flush()
    if url is None:
        spark = lake.spark()
        register_tables(lake, spark)
    else:
        from tracelake.lineage.connect import connect

        spark = connect(url)
        register_tables(lake, spark, trust_registered=True)
    _udtfs(spark, lake.settings.home)
    return spark


def cli_session(lake: Lakehouse, note: Any = None) -> SparkSession:
    """What `tracelake sql` asks: the lakehouse's Spark Connect server when one is up (seconds),
    else a session of its own - after saying, through ``note``, that Spark is starting and about
    how long that took last time."""
    from tracelake.lineage.connect import running_server

    url = running_server(lake.settings)
    if url is not None:
        return sql_session(lake, url)
    stamp = _start_stamp(lake)
    last = _read_seconds(stamp)
    if note is not None:
        note(f"tracelake: starting Spark (about {last or 20:.0f} s; `tracelake spark-sql --serve` keeps one "
             "running for the next questions)...")
    import time

    started = time.monotonic()
    spark = sql_session(lake)
    _write_seconds(stamp, time.monotonic() - started)
    return spark


def _start_stamp(lake: Lakehouse) -> Path | None:
    """How long Spark took to start last time on this machine: a courtesy estimate kept in the
    user's cache, never in the lakehouse (a question must not write into what it asks about)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(cache) / "tracelake"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / "spark_sql_start_seconds"


def _read_seconds(path: Path | None) -> float | None:
    try:
        return float(path.read_text()) if path is not None else None
    except (OSError, ValueError):
        return None


def _write_seconds(path: Path | None, seconds: float) -> None:
    try:
        if path is not None:
            path.write_text(f"{seconds:.1f}")
    except OSError:  # a read-only lakehouse: the estimate is only a courtesy
        pass


def ask(lake: Lakehouse, spark: SparkSession, query: str, *, admin: bool = False,
        reason: str | None = None, actor: str | None = None) -> DataFrame | None:
    """Run ``query`` through the SQL guard (see ``sql_guard``); returns the last question's rows.

    A question is also checked for the files it would read: every one must lie under the
    lakehouse root. An administrative statement is recorded in ``admin_actions`` before it runs,
    and its outcome after.
    """
    from urllib.parse import unquote

    from tracelake.lineage.query.admin import admin_action
    from tracelake.lineage.query.sql_guard import SqlRefused, judge

    # ``home``: an administrative statement may not spell the lakehouse's own folder (sql_guard).
    statements = judge(query, admin=admin, home=lake.layout.home)
    if admin and not (reason and reason.strip()):
        raise SqlRefused("--admin needs --reason: say why, it goes into the audit record")
    root = lake.layout.home.rstrip("/").removeprefix("file:")
    result = None
    for statement in statements:
        if statement.kind == "question":
            frame = spark.sql(statement.text)
            # Spark names files by URI: a space in the lakehouse path is %20 there (tracelake CLI).
            outside = [f for f in _input_files(frame)
                       if not unquote(f.removeprefix("file://").removeprefix("file:")).startswith(root + "/")]
            if outside:
                raise SqlRefused(f"the query would read {outside[0]}, outside the lakehouse {root}")
            result = frame
            continue
        with admin_action(lake, "sql", statement.text, reason=reason, actor=actor):
            result = spark.sql(statement.text)
            result.collect()
    return result


def _input_files(frame: DataFrame) -> list[str]:
    try:
        return list(frame.inputFiles())
    except Exception as exc:  # e.g. a SHOW/DESCRIBE plan with no files: nothing to check
        if "inputFiles" in str(exc) or "UnsupportedOperation" in type(exc).__name__:
            return []
        raise


def reproduce(lake: Lakehouse, run_id: str, spark: SparkSession | None = None) -> dict[str, Any]:
    """The exact inputs a run read: {input name: Spark DataFrame at the recorded version and
    partitions}; model inputs map to their ``models:/`` URI."""
    rec = AuditIndex(lake).record(run_id)
    spark = spark or lake.spark()
    out: dict[str, Any] = {}
    for inp in rec["inputs"]:
        if inp.get("kind") == "model":
            out[f"model:{inp['name']}"] = inp.get("uri") or f"models:/{inp['name']}/{inp['model_version']}"
        else:
            present = [p for p in (inp.get("partitions") or []) if p not in set(inp.get("missing_partitions") or [])]
            out[inp["name"]] = read_version(spark, inp["path"], int(inp["version"]),
                                            present if inp.get("partitions") is not None else None)
    return out


def _file_name(name: str) -> str:
    """An input's name as a plain file name: an external dataset's name may hold / or .."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "input"


def reproduce_to(lake: Lakehouse, run_id: str, directory: str) -> dict[str, Any]:
    """Save a run's exact inputs as Parquet under ``directory`` with a manifest (no Spark needed)."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from tracelake.lineage.layout import PARTITION_COLUMN, RESERVED_COLUMNS

    rec = AuditIndex(lake).record(run_id)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"run_id": run_id, "component": rec["component"], "partition_key": rec.get("partition_key"),
                                "inputs": []}
    for inp in rec["inputs"]:
        if inp.get("kind") == "model":
            manifest["inputs"].append({"kind": "model", "name": inp["name"], "version": inp.get("model_version"),
                                       "uri": inp.get("uri"), "mlflow_run_id": inp.get("mlflow_run_id")})
            continue
        dataset = DeltaTable(inp["path"], version=int(inp["version"])).to_pyarrow_dataset()
        flt = ds.field(PARTITION_COLUMN).isin(list(inp["partitions"])) if inp.get("partitions") is not None else None
        table = dataset.to_table(filter=flt)
        table = table.drop_columns([c for c in RESERVED_COLUMNS if c in table.column_names])
        file = target / f"{_file_name(inp['name'])}.parquet"   # always inside ``directory`` (tracelake CLI)
        pq.write_table(table, file)
        manifest["inputs"].append({"kind": "table", "name": inp["name"], "version": int(inp["version"]),
                                   "partitions": inp.get("partitions"), "rows": table.num_rows,
                                   "file": str(file)})
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def serve_lakehouse(lake: Lakehouse, port: int) -> int:
    """`tracelake spark-sql --serve`: the lakehouse's Spark Connect server in the foreground. Before
    it publishes its address it registers every table and answers one query (Delta, the catalog
    and the JIT warmed), so the first real question costs a question, not a start-up."""
    from tracelake.lineage.connect import serve

    def warm_up(url: str) -> None:
        spark = sql_session(lake, url)
        spark.sql("SELECT count(*) FROM audit.component_runs").collect()
        spark.stop()

    return serve(lake.settings, port, warm_up=warm_up)
