"""A crash-test worker: materialises toy components through real Dagster, Spark/Delta and MLflow.

Started by ``tests/support/crash_lab.py`` in its own process group (``start_new_session=True``),
so killing the group kills everything the run started: this Python, the Spark JVM and its
Python workers. Where it stops is set from outside with ``TRACELAKE_FAILPOINTS`` (see
``tracelake.lineage.record.failpoints``); the worker itself adds one point, ``worker_exit``, after
the Dagster run and before the process ends (the records still kept in memory are retried at
exit), and ``between_runs`` after each Dagster run.

    python tests/crash/worker.py --home H --asset doubled --partitions 2026-01-02 --out result.json

Writes, as it goes: ``<out>.started`` - one JSON line per component run opened (run id, pid),
durable before any work of the run, so a test knows every run that started even if the process
is killed a microsecond later; ``<out>`` - the outcome of each Dagster run when the process
reaches its end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

import dagster as dg
import pandas as pd

from tracelake.lineage import DeltaIOManager, LakehouseResource, MlflowResource, SparkResource, component
from tracelake.lineage.record.failpoints import failpoint

days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-03-01")


def _scale() -> int:
    return int(os.environ.get("TL_CRASH_SCALE", "1"))


@component(partitions_def=days)
def numbers(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Ten numbers per day (``TL_CRASH_SCALE`` tells re-runs apart)."""
    base = int(context.partition_key[-2:]) * 100
    return pd.DataFrame({"key": [f"{context.partition_key}-{i}" for i in range(10)],
                         "value": [(base + i) * _scale() for i in range(10)],
                         "writer": [os.getpid()] * 10})


@component(partitions_def=days)
def doubled(numbers):
    """The upstream partition read at its pinned version, doubled."""
    return numbers.selectExpr("key", "value * 2 AS value")


@component
def fresh_table() -> pd.DataFrame:
    """An unpartitioned table created by its first run (the external-session test)."""
    return pd.DataFrame({"x": [1, 2, 3]})


ASSETS = {"numbers": numbers, "doubled": doubled, "fresh_table": fresh_table}


class StartedLog:
    """Run listener: every opened run id, durably, in a file the test reads after a kill."""

    def __init__(self, path: str):
        self.path = path

    def run_started(self, record: dict) -> None:
        line = json.dumps({"run_id": record["run_id"], "pid": os.getpid(),
                           "component": record.get("component"), "partition": record.get("partition_key")})
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def external_session(home: str):
    """A Spark session built elsewhere (a notebook's, a platform's): Delta, but none of
    Tracelake's options - in particular not its 7-year retention defaults."""
    from pyspark.sql import SparkSession

    from tracelake.lineage.settings import load_settings
    from tracelake.lineage.spark import delta_jars

    jars = ",".join(delta_jars(load_settings(home=home).jars_dir))
    spark = (SparkSession.builder.master("local[1]").appName("someone-elses-session")
             .config("spark.jars", jars)
             .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
             .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", "1").config("spark.databricks.delta.snapshotPartitions", "1")
             .config("spark.pyspark.python", sys.executable)
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--asset", action="append", default=[], choices=sorted(ASSETS),
                        help="materialised in the order given, for every partition")
    parser.add_argument("--partitions", default="", help="comma-separated partition keys")
    parser.add_argument("--run", action="append", default=[], metavar="ASSET[:PARTITION]",
                        help="one more Dagster run, after those of --asset x --partitions")
    parser.add_argument("--out", required=True)
    parser.add_argument("--journal-dir")
    parser.add_argument("--flush-records", type=int, default=1000,
                        help="flush the journal to Delta at the end of a Dagster run once this many records wait")
    parser.add_argument("--external-spark", action="store_true",
                        help="build a Spark session without Tracelake's options before any run")
    args = parser.parse_args()

    out: dict = {"pid": os.getpid(), "runs": []}
    if args.external_spark:
        spark = external_session(args.home)
        out["external_session_retention"] = spark.conf.get(
            "spark.databricks.delta.properties.defaults.logRetentionDuration", None)

    spark_res = SparkResource(home=args.home)
    lake_res = LakehouseResource(home=args.home, spark=spark_res, mlflow=MlflowResource(home=args.home),
                                 journal_dir=args.journal_dir, flush_records=args.flush_records, flush_seconds=86400)
    try:
        lake_res.open().listeners.append(StartedLog(args.out + ".started"))
    except Exception as exc:  # e.g. a read-only journal: the Dagster run must still say why it failed
        out["open_error"] = f"{type(exc).__name__}: {exc}"
    resources = {"spark": spark_res, "lakehouse": lake_res, "delta_io_manager": DeltaIOManager(lakehouse=lake_res)}
    instance = dg.DagsterInstance.get()
    partitions = [p for p in args.partitions.split(",") if p] or [None]
    plan = [(name, partition) for partition in partitions for name in args.asset]
    plan += [(r.split(":", 1)[0], r.split(":", 1)[1] if ":" in r else None) for r in args.run]
    every = list(ASSETS.values())
    for name, partition in plan:
        try:
            result = dg.materialize(every, selection=[ASSETS[name]], partition_key=partition,
                                    resources=resources, instance=instance, raise_on_error=False)
            failures = [e.event_specific_data.error.to_string() for e in result.all_events
                        if e.event_type == dg.DagsterEventType.STEP_FAILURE]
            out["runs"].append({"asset": name, "partition": partition, "dagster_run_id": result.run_id,
                                "success": result.success, "failures": failures})
        except Exception:
            out["runs"].append({"asset": name, "partition": partition, "success": False,
                                "failures": [traceback.format_exc()]})
        failpoint("between_runs")
    try:
        out["unwritten"] = len(lake_res.open().recorder.unwritten)
    except Exception as exc:
        out["unwritten"] = f"unknown ({type(exc).__name__})"
    with open(args.out, "w") as fh:
        json.dump(out, fh)
    failpoint("worker_exit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
