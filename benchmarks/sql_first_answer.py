"""Spark SQL first answer: how long `tracelake sql "..."` takes from the shell (issue 14).

Each sample is a whole `tracelake sql` process, as a person at a shell runs it - Python start,
imports, opening the lakehouse, the session, registering the tables, the query and its rows:

* baseline - no server: the command starts its own local Spark (what every `tracelake sql`
  cost before `tracelake spark-sql --serve`);
* with the server - `tracelake spark-sql --serve` already running for the lakehouse (its own
  start-up is printed apart: paid once, not per question); the command finds its address and
  asks it over Spark Connect.

The queries are a time-travel read of a data table and an aggregate over the audit table. A
table registered on the server over a folder outside the lakehouse must still be refused - by
name, since the client knows the lakehouse's tables (the ``inputFiles()`` check behind it is
tested over Connect in tests/lineage/query/test_sql_connect.py).

Run:  .venv/bin/python benchmarks/sql_first_answer.py [--home LAKEHOUSE] [--n 5]
      (without --home: a 2-day demo lakehouse is simulated first, in a temporary folder)
Target: <= 5 s per answer with the server running (p50 and max); without one the command
says it is starting Spark.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import save_results

TRACELAKE = str(Path(sys.executable).with_name("tracelake"))
TARGET_S = 5.0


def build_lakehouse(home: str, days: int) -> None:
    import dagster as dg

    from tracelake.jobs.demo import DemoConfig, run_demo
    from tracelake.jobs.pipeline import daily_drift_job

    run_demo(home, days, DemoConfig(trips_per_day=2000, faults=[]), instance=dg.DagsterInstance.ephemeral(),
             progress=False, skip_jobs=frozenset({daily_drift_job.name, "compliance_reports"}))


def queries(home: str) -> list[str]:
    from deltalake import DeltaTable

    from tracelake.lineage import open_lakehouse
    from tracelake.lineage.query.sql import data_tables

    tables = data_tables(open_lakehouse(home))
    table = "trip_features" if "trip_features" in tables else sorted(tables)[0]
    version = max(DeltaTable(tables[table]).version() - 1, 0)
    return [f"SELECT count(*) AS n FROM {table} VERSION AS OF {version}",
            "SELECT component, status, count(*) AS runs FROM audit.component_runs GROUP BY 1, 2"]


def ask(home: str, query: str) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run([TRACELAKE, "--home", home, "sql", query, "--json"], capture_output=True, text=True)
    return time.perf_counter() - t, proc


def samples(home: str, qs: list[str], n: int) -> list[float]:
    out = []
    for i in range(n):
        seconds, proc = ask(home, qs[i % len(qs)])
        if proc.returncode != 0:
            raise RuntimeError(f"tracelake sql failed ({proc.returncode}): {proc.stderr[-800:]}")
        out.append(seconds)
        print(f"    {seconds:6.2f} s  {qs[i % len(qs)][:70]}", flush=True)
    return out


def start_server(home: str, port: int) -> tuple[subprocess.Popen, float]:
    from tracelake.lineage import load_settings
    from tracelake.lineage.connect import running_server

    settings = load_settings(home=home)
    t = time.perf_counter()
    server = subprocess.Popen([TRACELAKE, "--home", home, "spark-sql", "--serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while running_server(settings) is None:
        if server.poll() is not None:
            raise RuntimeError(f"`tracelake spark-sql --serve` exited with {server.returncode}")
        time.sleep(0.5)
    return server, time.perf_counter() - t


def guard_over_connect(home: str) -> str:
    """A table registered (by another client of the server) over a folder outside the lakehouse:
    the guard must refuse to read it."""
    outside = tempfile.mkdtemp(prefix="tracelake-outside-")
    import pyarrow as pa
    from deltalake import write_deltalake

    write_deltalake(outside, pa.table({"secret": ["do not read"]}))
    from pyspark.sql import SparkSession

    from tracelake.lineage.connect import running_server
    from tracelake.lineage.settings import load_settings

    other = SparkSession.builder.remote(running_server(load_settings(home=home))).getOrCreate()
    other.sql(f"CREATE TABLE IF NOT EXISTS default.elsewhere USING DELTA LOCATION '{outside}'")
    other.stop()
    _, proc = ask(home, "SELECT * FROM elsewhere")
    verdict = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    # refused either by name (the client knows the lakehouse's tables and this is none of them) or,
    # had the name passed, by the files the query would read
    refused = proc.returncode == 2 and ("outside the lakehouse" in verdict or "no table 'elsewhere'" in verdict)
    return ("refused: " + verdict) if refused else \
        f"NOT refused (exit {proc.returncode}): {proc.stdout[-200:]} {verdict}"


def report(name: str, values: list[float], target: float | None) -> dict:
    p50, worst = statistics.median(values), max(values)
    met = None if target is None else worst <= target
    status = "" if target is None else f"  target <= {target:.0f} s: {'met' if met else 'NOT met'}"
    print(f"  {name:36s} p50 {p50:6.2f} s  max {worst:6.2f} s  (n={len(values)}){status}")
    return {"p50_s": p50, "max_s": worst, "samples": values, "target_s": target, "met": met}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="an existing lakehouse (default: simulate a 2-day demo in a temporary folder)")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--n", type=int, default=5, help="answers per mode")
    parser.add_argument("--port", type=int, default=15012)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "sql_first_answer.json"))
    args = parser.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="tracelake-sql-")
    if not args.home:
        t = time.perf_counter()
        build_lakehouse(home, args.days)
        print(f"lakehouse: {args.days}-day demo simulated in {time.perf_counter() - t:.0f} s ({home})")
    qs = queries(home)
    print("without a server (each command starts its own Spark):", flush=True)
    cold = samples(home, qs, args.n)
    server, startup = start_server(home, args.port)
    try:
        print(f"with `tracelake spark-sql --serve` (its start-up, paid once: {startup:.1f} s):", flush=True)
        warm = samples(home, qs, args.n)
        guard = guard_over_connect(home)
    finally:
        server.terminate()              # SIGTERM: the server stops its JVM and removes its address
        server.wait(timeout=60)
    print(f"\n`tracelake sql` first answer, whole command from the shell ({os.cpu_count()} cores, shared)")
    result = {"home": home, "queries": qs, "server_startup_s": startup,
              "baseline": report("baseline: no server (own Spark)", cold, None),
              "server": report("with the Connect server", warm, TARGET_S)}
    result["speedup"] = result["baseline"]["p50_s"] / result["server"]["p50_s"]
    print(f"  ratio: {result['speedup']:.1f}x faster with the server (p50 vs p50); server start-up {startup:.1f} s, "
          "paid once")
    print(f"  SQL guard over Connect, a table over a folder outside the lakehouse: {guard}")
    result["guard_over_connect"] = guard
    save_results(args.out, result)
    return 0 if result["server"]["met"] and guard.startswith("refused") else 1


if __name__ == "__main__":
    sys.exit(main())
