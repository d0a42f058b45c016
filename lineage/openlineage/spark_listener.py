"""Attaching the OpenLineage Spark listener to a job that runs outside Dagster.

The listener (``io.openlineage:openlineage-spark_2.13``, one shaded jar) is fetched by
``install.sh`` into ``jars/openlineage-lib`` (``TRACELAKE_OPENLINEAGE_JARS_DIR``); these are the
Spark options a plain ``spark-submit`` (or ``SparkSession.builder``) needs to send its runs to
``tracelake openlineage serve`` - or to a file that ``tracelake openlineage import`` reads.
``tracelake openlineage spark-conf`` prints them as ``--jars``/``--conf`` flags.

What the listener reports, and what Tracelake does about it (see ``external``): one run per write
action, named ``<app>.<command>.<output>`` with the application run as parent; Delta versions
only for catalog tables (path-based reads and writes carry none, so versions are established
from the Delta log); failed writes reported as COMPLETE (so a COMPLETE whose commit is not in
the log is recorded as failed).
"""

from __future__ import annotations

from pathlib import Path

from tracelake.lineage.settings import Settings

__all__ = ["LISTENER_CLASS", "as_submit_flags", "listener_conf", "listener_jars"]

LISTENER_CLASS = "io.openlineage.spark.agent.OpenLineageSparkListener"


def listener_jars(settings: Settings) -> list[str]:
    jars = sorted(str(p) for p in Path(settings.openlineage_jars_dir).glob("openlineage-spark_*.jar"))
    if not jars:
        raise FileNotFoundError(
            f"the OpenLineage Spark listener jar is missing from {settings.openlineage_jars_dir}; run ./install.sh "
            "(it fetches it from Maven Central), or set TRACELAKE_OPENLINEAGE_JARS_DIR to a folder that has it")
    return jars


def listener_conf(settings: Settings, *, url: str | None = None, file: str | None = None,
                  namespace: str = "spark", app_name: str | None = None, timeout_ms: int = 5000) -> dict[str, str]:
    """Spark options for the listener: HTTP to ``url`` (default: this machine's ``serve``), or
    JSON lines into ``file``. The Delta jars are not included: the job loads them as it always does."""
    conf = {
        "spark.extraListeners": LISTENER_CLASS,
        "spark.openlineage.namespace": namespace,
    }
    if app_name:
        conf["spark.app.name"] = app_name
    if file:
        conf.update({"spark.openlineage.transport.type": "file", "spark.openlineage.transport.location": file})
    else:
        conf.update({"spark.openlineage.transport.type": "http",
                     "spark.openlineage.transport.url": url or f"http://127.0.0.1:{settings.openlineage_port}",
                     "spark.openlineage.transport.endpoint": "/api/v1/lineage",
                     "spark.openlineage.transport.timeoutInMillis": str(timeout_ms)})
    return conf


def as_submit_flags(jars: list[str], conf: dict[str, str]) -> str:
    lines = [f"--jars {','.join(jars)}"] + [f"--conf {k}={v}" for k, v in conf.items()]
    return " \\\n  ".join(lines)
