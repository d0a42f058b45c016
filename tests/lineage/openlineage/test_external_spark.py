"""A plain PySpark job outside Dagster, with the OpenLineage Spark listener (the jar fetched at
install time), reads ``cleaned_trips`` of a copy of the ETL-bug lakehouse and writes a new Delta
table; ``tracelake openlineage serve`` receives its events; a Tracelake component then reads that
table. The trace of the component's output names the external job and the exact version of
``cleaned_trips`` it read, and goes on through it to the ETL runs and the raw feed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from tracelake.jobs.cli import main
from tracelake.lineage import (
    ComponentRun,
    DeltaIOManager,
    LakehouseResource,
    MlflowResource,
    SparkResource,
    component,
    open_lakehouse,
)
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.lineage.query.impact import impact
from tracelake.lineage.query.trace import trace
from tracelake.lineage.record import delta_meta

JOB = Path(__file__).with_name("external_job.py")


@component
def fare_summary(run: ComponentRun):
    """Reads the external job's table (recorded as an input of this run, at the version read)."""
    return run.read_table("trip_fares").groupBy("fare_band").count()


def _serve(home: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([str(Path(sys.executable).with_name("tracelake")), "--home", home, "openlineage", "serve",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()          # "... listening on http://127.0.0.1:PORT/api/v1/lineage ..."
    assert "listening on" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line.split("listening on ")[1].split("/api/")[0]


def test_trace_crosses_an_external_spark_job_to_the_version_it_read(etl_bug_scenario, tmp_path, spark, capsys):
    home = etl_bug_scenario.copy(tmp_path / "lake")
    cleaned = f"{home}/tables/cleaned_trips"
    read_version = delta_meta.latest_version(cleaned)
    server, url = _serve(home)
    try:
        job = subprocess.run([sys.executable, str(JOB), cleaned, f"{home}/tables/trip_fares", url, "fare_bands"],
                             capture_output=True, text=True, timeout=900)
        assert job.returncode == 0, job.stderr[-3000:]
        lake = open_lakehouse(home)
        deadline = time.time() + 120
        external = []
        while not external and time.time() < deadline:
            runs = lake.store.component_runs()
            external = runs[runs["component"] == "external:fare_bands"].to_dict("records")
            time.sleep(0.5)
    finally:
        server.terminate()
        assert server.wait(60) == 0
    (rec,) = external
    assert rec["status"] == "succeeded" and rec["output_table"] == "trip_fares" and rec["output_version"] == 0
    (inp,) = rec["inputs"]
    assert (inp["name"], inp["version"]) == ("cleaned_trips", read_version)
    assert rec["tags"]["tracelake.external.output"].startswith("v0 verified")
    assert rec["library_versions"]["spark"] == "4.2.0"

    lakehouse = LakehouseResource(home=home, spark=SparkResource(home=home), mlflow=MlflowResource(home=home))
    assert dg.materialize([fare_summary], resources={"lakehouse": lakehouse,
                                                     "delta_io_manager": DeltaIOManager(lakehouse=lakehouse)}).success

    result = trace(lake, "fare_summary")
    (root,) = result.roots
    (to_external,) = result.parents(root)
    assert to_external.input == "trip_fares@v0" and result.nodes[to_external.parent].component == "external:fare_bands"
    reads = result.parents(to_external.parent)
    assert reads and {e.input for e in reads} == {f"cleaned_trips@v{read_version}"}
    assert {result.nodes[e.parent].component for e in reads} == {"cleaned_trips"}
    assert {n.component for n in result.runs()} >= {"fare_summary", "external:fare_bands", "cleaned_trips", "raw_trips"}
    assert main(["--home", home, "trace", "fare_summary"]) == 0
    tree = capsys.readouterr().out
    assert "external:fare_bands" in tree and f"cleaned_trips@v{read_version}" in tree

    # Forward, the bad ETL day reaches the external job and what read its table.
    bad_day = next(n for n in result.runs("cleaned_trips") if n.partition_key == "2026-01-14")
    downstream = {n.component for n in impact(lake, bad_day.id).affected_runs()}
    assert {"external:fare_bands", "fare_summary"} <= downstream
    report = verify_lakehouse(lake, deep=False)
    assert report.external_runs == 1 and not [p for p in report.problems if "trip_fares" in p], report.problems
