"""A long-lived Spark Connect server for one lakehouse, so `tracelake sql` answers in seconds.

Starting local Spark costs ~11 s and its first job ~8 s on a 2-core machine - every time, since a
CLI process starts its own session. ``tracelake spark-sql --serve`` starts Spark once, as a
Spark Connect server (the ``SparkConnectServer`` class that pyspark's own jars ship, launched
with pyspark's ``spark-submit`` and the same settings, Delta jars and retention defaults as every
other Tracelake session), bound to 127.0.0.1. It registers the lakehouse's tables, answers one
query to warm up, and writes its address to ``<lakehouse>/_spark_connect.json``; from then on
`tracelake sql` on that lakehouse talks to it (``sc://127.0.0.1:PORT``) instead of starting
Spark. Ctrl-C stops it and removes the address file; an address whose process is gone or whose
port does not answer is ignored, so a killed server never leaves `tracelake sql` stuck.

The server answers anyone who can reach 127.0.0.1 on this machine, with this user's file access
- the same as the files of the lakehouse itself; the SQL guard (``query/sql_guard.py`` and the
``inputFiles()`` check in ``query/sql.py``) judges every statement on the client side as before.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracelake.lineage.processes import pid_alive
from tracelake.lineage.settings import Settings, is_local_uri, to_local_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["DEFAULT_PORT", "SERVER_CLASS", "address_path", "connect", "running_server", "serve", "server_command"]

DEFAULT_PORT = 15002
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
_ADDRESS = "_spark_connect.json"
_START_TIMEOUT_S = 300


def address_path(settings: Settings) -> Path:
    """Where a running server of this lakehouse leaves its address: in the lakehouse folder, or
    (object-store lakehouses) under ~/.tracelake/connect, named by the lakehouse URI."""
    if is_local_uri(settings.home):
        return to_local_path(settings.home) / _ADDRESS
    import hashlib

    digest = hashlib.sha256(settings.home.encode()).hexdigest()[:16]
    return Path.home() / ".tracelake" / "connect" / f"{digest}.json"


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def running_server(settings: Settings) -> str | None:
    """``sc://127.0.0.1:PORT`` of this lakehouse's server when one is up, else None."""
    path = address_path(settings)
    try:
        info = json.loads(path.read_text())
        port, pid = int(info["port"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if info.get("home") != settings.home or not pid_alive(pid) or not _port_open(port):
        return None
    return f"sc://127.0.0.1:{port}"


def server_command(settings: Settings, port: int) -> list[str]:
    """``spark-submit --class SparkConnectServer`` with the lakehouse's Spark settings."""
    from pyspark.find_spark_home import _find_spark_home

    from tracelake.lineage.spark import spark_conf  # imports Dagster: only when starting a server

    conf = spark_conf(settings)
    conf.update({
        "spark.app.name": "tracelake-connect",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
    })
    cmd = [str(Path(_find_spark_home()) / "bin" / "spark-submit"), "--class", SERVER_CLASS,
           "--name", "tracelake-connect", "--driver-memory", settings.spark_driver_memory]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    return cmd


def connect(url: str) -> SparkSession:
    """A Spark Connect session on ``url``; released when this process exits."""
    import atexit

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(url).getOrCreate()
    atexit.register(_release, spark)
    return spark


def _release(spark: SparkSession) -> None:
    try:
        spark.stop()
    except Exception:  # the server went away first: nothing left to release
        pass


def _wait_for_port(child: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not _port_open(port, timeout=0.2):
        if child.poll() is not None:
            raise RuntimeError(f"the Spark Connect server exited with code {child.returncode} before listening "
                               f"on 127.0.0.1:{port} (see its log above)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Spark Connect server did not listen on 127.0.0.1:{port} within "
                               f"{_START_TIMEOUT_S} s")
        time.sleep(0.25)


def _write_address(settings: Settings, port: int, pid: int) -> Path:
    path = address_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": f"sc://127.0.0.1:{port}", "port": port, "pid": pid, "home": settings.home,
                               "started_at": datetime.now(UTC).isoformat()}))
    os.replace(tmp, path)
    return path


def _stop(child: subprocess.Popen) -> int:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            return child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    return child.wait()


def _interrupt_on(*signals: int) -> None:
    """Ctrl-C and a plain ``kill`` both stop the server cleanly (JVM stopped, address removed) -
    also when this process was started with SIGINT ignored (from a script, in the background)."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in signals:
        signal.signal(sig, interrupt)


def serve(settings: Settings, port: int = DEFAULT_PORT, *, warm_up: Callable[[str], Any] | None = None,
          say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)) -> int:
    """Run the server in the foreground until Ctrl-C (or the server dies); returns its exit code.

    ``warm_up(url)`` runs once the port answers and before the address is published (the CLI
    registers the tables and answers one query there, so the first real question is fast)."""
    existing = running_server(settings)
    if existing:
        raise RuntimeError(f"a Spark Connect server already serves {settings.home} at {existing}")
    if _port_open(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is taken; choose another with --port")
    _interrupt_on(signal.SIGINT, signal.SIGTERM)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("SPARK_REMOTE", None)
    started = time.monotonic()
    say(f"tracelake: starting the Spark Connect server for {settings.home} on 127.0.0.1:{port} "
        f"({settings.spark_master}, driver {settings.spark_driver_memory})...")
    child = subprocess.Popen(server_command(settings, port), env=env)
    address: Path | None = None
    try:
        _wait_for_port(child, port)
        url = f"sc://127.0.0.1:{port}"
        if warm_up is not None:
            warm_up(url)
        address = _write_address(settings, port, child.pid)
        say(f"tracelake: Spark Connect server ready at {url} after {time.monotonic() - started:.0f} s; "
            f"`tracelake sql` on this lakehouse now uses it. Ctrl-C stops it.")
        return child.wait()
    except KeyboardInterrupt:
        say("tracelake: stopping the Spark Connect server")
        return _stop(child)
    finally:
        if child.poll() is None:
            _stop(child)
        if address is not None:
            address.unlink(missing_ok=True)
