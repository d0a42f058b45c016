"""A plain PySpark job outside Dagster, as a team would `spark-submit` it: read a lakehouse table
by path, write a new Delta table - with the OpenLineage Spark listener attached, sending to a URL
(``tracelake openlineage serve``) or to a JSON-lines file.

    python external_job.py INPUT_PATH OUTPUT_PATH (http://HOST:PORT | file:PATH) APP_NAME

Run as its own process by the tests (nothing of Tracelake is imported but the settings that say
where the fetched jars are).
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tracelake.lineage.openlineage.spark_listener import listener_conf, listener_jars
from tracelake.lineage.settings import load_settings
from tracelake.lineage.spark import delta_jars


def main(source: str, target: str, sink: str, app: str) -> None:
    settings = load_settings()
    conf = listener_conf(settings, url=sink if sink.startswith("http") else None,
                         file=sink[len("file:"):] if sink.startswith("file:") else None, app_name=app,
                         timeout_ms=10000)
    builder = (SparkSession.builder.master("local[2]")
               .config("spark.jars", ",".join(delta_jars(settings.jars_dir) + listener_jars(settings)))
               .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
               .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
               .config("spark.sql.shuffle.partitions", "2").config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false").config("spark.databricks.delta.snapshotPartitions", "2")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.session.timeZone", "UTC"))
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    trips = spark.read.format("delta").load(source)
    keep = [c for c in trips.columns if not c.startswith("_tl_")]
    out = trips.select(*keep)
    if "fare_amount" in out.columns:
        out = out.withColumn("fare_band", F.when(F.col("fare_amount") >= 30, "high").otherwise("normal"))
    out.write.format("delta").mode("overwrite").save(target)
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:5])
