"""Spark beyond local mode: a standalone/YARN/k8s master, Spark Connect, a lakehouse on ``s3a://``.

Everything here follows from settings, never from a named environment: a ``spark://`` master
gets the project's Python for its executors; a lakehouse on ``s3a://`` gets the s3a jars and the
object store's endpoint and keys (the same ``AWS_*`` variables delta-rs and pyarrow read, so one
store configuration serves the data path and the audit tables); ``TRACELAKE_SPARK_CONF`` adds
whatever else a cluster needs. ``spark.py`` merges :func:`scale_out_conf` into every session.

One rule the code cannot enforce for Spark: Delta 4.4 writes ``s3a://`` tables through
``S3SingleDriverLogStore``, whose mutual exclusion lives inside one JVM. Two Spark *drivers*
committing to the same table at once can silently lose a commit (measured: docs/scaling.md). So
one driver writes a given table at a time - Dagster runs one materialisation per partition, and
the recorder checks, after every commit, that the version it recorded is the one its commit
made (``tables.py``); several delta-rs writers (the audit tables) are safe because delta-rs uses
S3 conditional puts.

``python -m tracelake.lineage.spark_cluster properties|jars`` prints the same configuration for
servers started outside Python (the Spark Connect server of ``scale/services/spark.sh``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tracelake.lineage.settings import Settings, load_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["connect_session", "extra_conf", "is_connect", "s3a_conf", "s3a_jars", "scale_out_conf", "scale_out_jars"]


def is_connect(master: str) -> bool:
    """A Spark Connect URL (``sc://host:port``): the session is a client of a remote driver."""
    return master.startswith("sc://")


def s3a_jars(settings: Settings) -> list[str]:
    """hadoop-aws and the AWS SDK jars, needed by Spark only when the lakehouse is on ``s3a://``."""
    jars = sorted(str(p) for p in Path(settings.s3a_jars_dir).glob("*.jar"))
    if not any(Path(j).name.startswith("hadoop-aws-") for j in jars):
        raise RuntimeError(
            f"the lakehouse {settings.home} is on s3a:// but the s3a jars are missing from {settings.s3a_jars_dir}; "
            "run ./install.sh --cluster (it fetches hadoop-aws from Maven Central), or set TRACELAKE_S3A_JARS_DIR")
    return jars


def s3a_conf(env: Mapping[str, str]) -> dict[str, str]:
    """Spark's s3a options from the AWS_* variables (path-style, the endpoint's scheme decides TLS).
    Spark redacts ``*.secret.key`` and ``*.access.key`` in its UI and logs."""
    conf = {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.bucket.probe": "0",
        # S3-compatible stores differ in what they return for versionId/etag on copies
        "spark.hadoop.fs.s3a.change.detection.version.required": "false",
    }
    endpoint = env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL_S3")
    if endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https")).lower()
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        conf["spark.hadoop.fs.s3a.endpoint.region"] = region
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        conf["spark.hadoop.fs.s3a.access.key"] = env["AWS_ACCESS_KEY_ID"]
        conf["spark.hadoop.fs.s3a.secret.key"] = env["AWS_SECRET_ACCESS_KEY"]
    return conf


def extra_conf(text: str) -> dict[str, str]:
    """``TRACELAKE_SPARK_CONF``: ``key=value;key=value`` (values may hold spaces and '=')."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"TRACELAKE_SPARK_CONF: {item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def scale_out_conf(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a non-embedded setup adds to ``spark.py``'s configuration (nothing for the default)."""
    env = os.environ if env is None else env
    conf: dict[str, str] = {}
    if not settings.spark_master.startswith("local"):
        # Executors start PYSPARK_PYTHON (from the driver's environment); it must be a Python with
        # the same packages and minor version, at this path on every worker.
        python = env.get("PYSPARK_PYTHON") or sys.executable
        conf["spark.pyspark.python"] = python
        conf["spark.pyspark.driver.python"] = sys.executable
    if settings.home.startswith("s3a://"):
        conf.update(s3a_conf(env))
    conf.update(extra_conf(settings.spark_conf))
    return conf


def scale_out_jars(settings: Settings) -> list[str]:
    """Jars beyond Delta's: the s3a ones when the lakehouse is on ``s3a://`` (shipped to executors)."""
    return s3a_jars(settings) if settings.home.startswith("s3a://") else []


def connect_session(settings: Settings, retention_interval: str) -> SparkSession:
    """A Spark Connect client session: no JVM here, the server holds Delta and the jars. Only
    session-level SQL settings can be set from a client (retention defaults included)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(settings.spark_master).getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracelake.lineage.spark_cluster")
    sub = parser.add_subparsers(dest="what", required=True)
    props = sub.add_parser("properties", help="a --properties-file for a Spark server on this lakehouse")
    props.add_argument("--master", required=True)
    sub.add_parser("jars", help="the jars such a server needs, comma-separated")
    args = parser.parse_args(argv)
    from tracelake.lineage.spark import spark_conf

    settings = load_settings(spark_master=getattr(args, "master", None))
    conf = spark_conf(settings)
    jars = conf.pop("spark.jars", "")
    if args.what == "jars":
        print(jars)
        return 0
    for key in ("spark.master", "spark.app.name", "spark.pyspark.driver.python"):
        conf.pop(key, None)
    for key, value in sorted(conf.items()):
        print(f"{key} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
