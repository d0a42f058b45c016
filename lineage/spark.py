"""The Spark session: one per process, local mode by default, Delta configured.

Starting a local session costs ~11 s and its first job ~8 s on a 2-core machine, so the session
is created lazily (only when something needs Spark) and shared by everything in the process.
Static options (master, memory, jars) apply only to the first session created in a process.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import dagster as dg
from pydantic import Field

from tracelake.lineage.jvm_stderr import jvm_stderr_filtered
from tracelake.lineage.settings import Settings, load_settings
from tracelake.lineage.spark_cluster import connect_session, is_connect, scale_out_conf, scale_out_jars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SparkResource", "delta_jars", "ensure_retention", "get_spark", "spark_conf"]

log = logging.getLogger("tracelake.spark")
_lock = threading.Lock()
_LOG4J = Path(__file__).with_name("log4j2.properties")


def delta_jars(jars_dir: str) -> list[str]:
    directory = Path(jars_dir)
    jars = sorted(str(p) for p in directory.glob("*.jar"))
    if not any(Path(j).name.startswith("delta-spark_") for j in jars):
        raise RuntimeError(
            f"the Delta Lake jars are missing from {directory}; run ./install.sh (it fetches them "
            "from Maven Central with Maven), or set TRACELAKE_JARS_DIR to a folder that has them"
        )
    return jars


def spark_conf(settings: Settings, *, snapshot_partitions: int = 2, ui: bool = False) -> dict[str, str]:
    retention = settings.retention_interval
    conf = {
        "spark.master": settings.spark_master,
        "spark.app.name": "tracelake",
        "spark.jars": ",".join(delta_jars(settings.jars_dir) + scale_out_jars(settings)),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "true" if ui else "false",
        "spark.ui.showConsoleProgress": "false",
        # Delta state reconstruction defaults to 50 partitions, which dominates small reads locally.
        "spark.databricks.delta.snapshotPartitions": str(snapshot_partitions),
        # Every table this session creates keeps its history for the retention horizon: Delta's
        # defaults (30 days of log, 7 days of removed files) would make old versions unreadable.
        "spark.databricks.delta.properties.defaults.logRetentionDuration": retention,
        "spark.databricks.delta.properties.defaults.deletedFileRetentionDuration": retention,
        # The catalog lives in memory and every table is external (registered at its lakehouse
        # location), so the warehouse only ever holds empty database folders: kept out of the
        # lakehouse, so that asking a question never writes into it.
        "spark.sql.warehouse.dir": str(Path(tempfile.gettempdir()) / "tracelake-spark-warehouse"),
        # Pinned reads hand Spark explicit file lists (up to a few hundred); listing them in the
        # driver is milliseconds, a distributed listing job is seconds.
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "1024",
    }
    if settings.spark_master.startswith("local"):
        # Python workers (pandas UDFs) must run in this interpreter's environment, not PATH's.
        conf["spark.pyspark.python"] = sys.executable
        conf["spark.pyspark.driver.python"] = sys.executable
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    if _LOG4J.exists():
        conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{_LOG4J}"
    conf.update(scale_out_conf(settings))  # cluster master, s3a, TRACELAKE_SPARK_CONF (spark_cluster.py)
    return conf


_RETENTION_KEYS = ("spark.databricks.delta.properties.defaults.logRetentionDuration",
                   "spark.databricks.delta.properties.defaults.deletedFileRetentionDuration")
_retention_done: set[tuple[int, str]] = set()


def ensure_retention(spark: SparkSession, interval: str) -> SparkSession:
    """Make every table this session creates keep its history for the horizon, whoever built the
    session (a notebook's, a cluster's): Delta's defaults would give new tables 30 days of log and
    7 days of removed files. Session-level SQL settings, set once per session."""
    key = (id(spark), interval)
    if key not in _retention_done:
        for conf in _RETENTION_KEYS:
            if spark.conf.get(conf, None) != interval:
                spark.conf.set(conf, interval)
        _retention_done.add(key)
    return spark


def get_spark(settings: Settings | None = None, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """The process's Spark session, created on first use."""
    from pyspark.sql import SparkSession

    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        settings = settings or load_settings()
        if is_connect(settings.spark_master):
            return connect_session(settings, settings.retention_interval)
        builder = SparkSession.builder
        for key, value in {**spark_conf(settings), **(extra_conf or {})}.items():
            builder = builder.config(key, value)
        log.info("starting Spark (%s) - this takes ~10 s on a small machine", settings.spark_master)
        if settings.spark_master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Executors on any master start the Python named by the driver process's PYSPARK_PYTHON
        # (spark.pyspark.python alone is not enough for a session built from Python).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        with jvm_stderr_filtered():   # the driver JVM inherits the filtered stderr for its lifetime
            spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
        return spark


class SparkResource(dg.ConfigurableResource):
    """Resource key ``spark``: the shared Spark session with Delta configured.

    Unset fields fall back to the ``TRACELAKE_SPARK_*`` environment variables (see
    ``tracelake.lineage.settings``), so local and cluster runs differ only by configuration.
    """

    # Recorded with each run (lineage/record/config_record.py); extra_conf may hold storage keys.
    tracelake_recorded_fields: ClassVar[tuple[str, ...]] = ("master", "driver_memory", "shuffle_partitions", "home", "ui")

    master: str | None = Field(default=None, description="Spark master URL; default TRACELAKE_SPARK_MASTER or local[*]")
    driver_memory: str | None = Field(default=None, description="default TRACELAKE_SPARK_DRIVER_MEMORY or 4g")
    shuffle_partitions: int | None = Field(default=None, description="default TRACELAKE_SPARK_SHUFFLE_PARTITIONS or 8")
    home: str | None = Field(default=None, description="lakehouse root; default TRACELAKE_HOME or ./lakehouse")
    ui: bool = Field(default=False, description="start the Spark web UI (port 4040)")
    extra_conf: dict[str, str] = Field(default_factory=dict, description="any other Spark options")

    def settings(self) -> Settings:
        return load_settings(
            home=self.home,
            spark_master=self.master,
            spark_driver_memory=self.driver_memory,
            spark_shuffle_partitions=self.shuffle_partitions,
        )

    def get_session(self) -> SparkSession:
        extra = dict(self.extra_conf)
        if self.ui:
            extra["spark.ui.enabled"] = "true"
        return get_spark(self.settings(), extra)
