"""`tracelake sql` through a long-lived Spark Connect server (`tracelake spark-sql --serve`).

The end-to-end test runs every client in its own process, as a user does: a Spark Connect
client switches pyspark into Connect mode for the whole process, which the test session's own
local Spark must not be.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracelake.lineage.connect import SERVER_CLASS, address_path, running_server, server_command
from tracelake.lineage.settings import load_settings

TRACELAKE = str(Path(sys.executable).with_name("tracelake"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_stale_address_is_ignored(tmp_path):
    settings = load_settings(home=str(tmp_path))
    assert running_server(settings) is None
    path = address_path(settings)
    assert path == tmp_path / "_spark_connect.json"
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        path.write_text(json.dumps({"port": port, "pid": os.getpid(), "home": settings.home}))
        assert running_server(settings) == f"sc://127.0.0.1:{port}"
        path.write_text(json.dumps({"port": port, "pid": os.getpid(), "home": "/another/lakehouse"}))
        assert running_server(settings) is None                     # another lakehouse's server
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        path.write_text(json.dumps({"port": port, "pid": int(dead.stdout), "home": settings.home}))
        assert running_server(settings) is None                     # its process is gone
    path.write_text(json.dumps({"port": port, "pid": os.getpid(), "home": settings.home}))
    assert running_server(settings) is None                         # nothing listens any more
    path.write_text("not json")
    assert running_server(settings) is None


def test_the_server_runs_with_the_lakehouse_settings_on_localhost(tmp_path):
    cmd = server_command(load_settings(home=str(tmp_path)), 15999)
    assert cmd[0].endswith("spark-submit") and cmd[cmd.index("--class") + 1] == SERVER_CLASS
    confs = dict(c.split("=", 1) for c in cmd[cmd.index("--conf"):][1::2])
    assert confs["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert confs["spark.connect.grpc.binding.port"] == "15999"
    assert confs["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert "delta-spark_" in confs["spark.jars"]
    assert confs["spark.databricks.delta.properties.defaults.logRetentionDuration"].startswith("interval ")


def _lakehouse(home: Path) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    from tracelake.lineage import open_lakehouse

    lake = open_lakehouse(str(home))
    for rows in (10, 20, 30):
        write_deltalake(lake.layout.table("trips"), pa.table({"x": list(range(rows))}), mode="overwrite")
    lake.flush()


def _sql(home: Path, query: str) -> subprocess.CompletedProcess:
    return subprocess.run([TRACELAKE, "--home", str(home), "sql", query, "--json"], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.integration
def test_sql_answers_through_the_server_and_the_guard_still_refuses(tmp_path):
    home, outside = tmp_path / "lake", tmp_path / "outside"
    _lakehouse(home)
    settings = load_settings(home=str(home))
    port = _free_port()
    server = subprocess.Popen([TRACELAKE, "--home", str(home), "spark-sql", "--serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while running_server(settings) is None:
            assert server.poll() is None, server.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the server did not come up in 10 minutes"
            time.sleep(1)
        answer = _sql(home, "SELECT count(*) AS n FROM trips VERSION AS OF 1")
        assert answer.returncode == 0, answer.stderr
        assert json.loads(answer.stdout) == [{"n": 20}]

        # Another client of the shared server re-points a lakehouse table at a folder outside
        # it: the catalog now lies, and the inputFiles() guard must still refuse the read.
        repoint = (
            "import pyarrow as pa, sys\nfrom deltalake import write_deltalake\n"
            f"write_deltalake({str(outside)!r}, pa.table({{'secret': ['x']}}))\n"
            "from pyspark.sql import SparkSession\n"
            f"s = SparkSession.builder.remote('sc://127.0.0.1:{port}').getOrCreate()\n"
            "s.sql('DROP TABLE default.trips')\n"
            f"s.sql(\"CREATE TABLE default.trips USING DELTA LOCATION '{outside}'\")\ns.stop()\n")
        subprocess.run([sys.executable, "-c", repoint], check=True, capture_output=True, timeout=600)
        refused = _sql(home, "SELECT * FROM trips")
        assert refused.returncode == 2 and "outside the lakehouse" in refused.stderr, refused.stderr
        assert "secret" not in refused.stdout
    finally:
        server.terminate()                 # as Ctrl-C: the JVM stops and the address goes away
        server.wait(timeout=120)
    assert not address_path(settings).exists()
    assert running_server(settings) is None
