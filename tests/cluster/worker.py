"""A worker of the cluster tests: materialises a toy component on the scale-out profile.

Every resource is bound the way a production deployment binds it - ``dg.EnvVar`` - so this
process runs on whatever the environment names: a ``spark://`` master, an ``s3a://``
lakehouse, the journal in PostgreSQL, the MLflow server, the Dagster instance in PostgreSQL.

    python tests/cluster/worker.py --partitions 2026-01-02,2026-01-03 --out result.json [--slow SECONDS]

``--slow`` makes each materialisation hold a Spark job that long (a worker can be killed under
it). The result file lists each Dagster run's outcome; ``<out>.started`` gets one line per
component run opened, durable before any of its work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import dagster as dg
import pandas as pd

from tracelake.lineage import DeltaIOManager, LakehouseResource, MlflowResource, SparkResource, component

days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2027-01-01")


@component(partitions_def=days)
def numbers(context: dg.AssetExecutionContext, spark: SparkResource) -> pd.DataFrame:
    """Ten numbers per day; with TL_WORKER_SLOW the rows go through a Spark job that takes that long."""
    base = int(context.partition_key.replace("-", "")) % 100000
    frame = pd.DataFrame({"key": [f"{context.partition_key}-{i}" for i in range(10)],
                          "value": [base + i for i in range(10)],
                          "writer": [os.getpid()] * 10})
    slow = float(os.environ.get("TL_WORKER_SLOW", "0"))
    if not slow:
        return frame
    session = spark.get_session()

    def hold(rows):  # runs on the executors: long enough for a test to kill the worker under it
        time.sleep(slow)
        yield from rows

    data = session.createDataFrame(frame).repartition(4)
    return session.createDataFrame(data.rdd.mapPartitions(hold), data.schema)


class StartedLog:
    """Run listener: each opened run id, fsync'd, so a test knows every run that started."""

    def __init__(self, path: str):
        self.path = path

    def run_started(self, record: dict) -> None:
        line = json.dumps({"run_id": record["run_id"], "partition": record.get("partition_key"), "pid": os.getpid()})
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


FLUSH = {"flush_records": 10_000, "flush_seconds": 86_400}  # nothing flushed by the runs: the journal holds it all


def resources() -> dict:
    """Production-style binding: every value from the environment, by name (dg.EnvVar)."""
    spark = SparkResource(master=dg.EnvVar("TRACELAKE_SPARK_MASTER"), home=dg.EnvVar("TRACELAKE_HOME"),
                          driver_memory=dg.EnvVar("TRACELAKE_SPARK_DRIVER_MEMORY"))
    mlflow = MlflowResource(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"), home=dg.EnvVar("TRACELAKE_HOME"))
    lake = LakehouseResource(home=dg.EnvVar("TRACELAKE_HOME"), journal_url=dg.EnvVar("TRACELAKE_JOURNAL_URL"),
                             spark=spark, mlflow=mlflow, **FLUSH)
    return {"spark": spark, "lakehouse": lake, "delta_io_manager": DeltaIOManager(lakehouse=lake)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    res = resources()
    # the same settings as the runs' resource, so this is the same (per process) Lakehouse
    lake = LakehouseResource(home=os.environ["TRACELAKE_HOME"], journal_url=os.environ["TRACELAKE_JOURNAL_URL"],
                             **FLUSH).open()
    lake.listeners.append(StartedLog(args.out + ".started"))
    instance = dg.DagsterInstance.get()
    out: dict = {"pid": os.getpid(), "runs": []}
    for partition in [p for p in args.partitions.split(",") if p]:
        result = dg.materialize([numbers], partition_key=partition, resources=res, instance=instance,
                                raise_on_error=False)
        failures = [e.event_specific_data.error.to_string() for e in result.all_events
                    if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        out["runs"].append({"partition": partition, "dagster_run_id": result.run_id, "success": result.success,
                            "failures": failures})
        with open(args.out, "w") as fh:  # as it goes: a killed worker still leaves what it did
            json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
