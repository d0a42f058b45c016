"""OpenLineage publishing: what it adds to a materialisation, and how fast history exports
(issue: OpenLineage both ways).

1. **Critical path.** The same small ``@component`` (read a 1,000-row input, filter, write one
   Delta commit, two declared tests) is materialised N times in three lakehouses of one process -
   publishing off, publishing to the default JSON lines, publishing over HTTP to a real
   OpenLineage endpoint on 127.0.0.1 - interleaved, with a warm Spark session. Reported: the time
   the run's thread spends in the publisher (every listener call of a materialisation, timed
   around the real calls), and the end-to-end medians of the three variants with their ratio to
   "off" (the baseline, measured in the same run). Then the background side: how long the sender
   took to deliver everything after the last run.
2. **Export.** Three simulated years of history (``history.py``, cached and shared with
   ``trace_latency.py``: ~28,000 runs at the reference pipeline's cadences) exported with the live
   builder: to a JSON-lines file, and to the HTTP endpoint as ``tracelake openlineage export``
   sends (4 runs at once, each run's events in order); events per second, against building the
   events alone (the floor).

Run:  .venv/bin/python benchmarks/openlineage_publish.py [--n 40] [--years 3] [--trips-per-day 2000]
Target: <= 2 ms median added to a materialisation's critical path.
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
from urllib.request import urlopen

from benchlib import save_results

sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("TRACELAKE_SPARK_MASTER", "local[2]")
os.environ.setdefault("TRACELAKE_SPARK_SHUFFLE_PARTITIONS", "2")


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


_ENDPOINT = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
received = 0
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_POST(self):
        global received
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        received += 1
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_GET(self):
        body = str(received).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Endpoint:
    """A real OpenLineage HTTP endpoint on 127.0.0.1, in its own process as a backend would be,
    answering 201 like Marquez and counting what it received."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", _ENDPOINT], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.proc.stdout.readline().strip()}"

    @property
    def received(self) -> int:
        with urlopen(f"{self.url}/count", timeout=30) as response:
            return int(response.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class Timed:
    """Wraps the publisher: the time spent on the run's thread in each listener call."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def timed(*args):
            t0 = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.calls.append((name, (time.perf_counter() - t0) * 1000))
        return timed


def critical_path(n: int, endpoint: Endpoint) -> dict:
    import dagster as dg
    import pandas as pd
    from openlineage.client import OpenLineageClient

    from tracelake.lineage import DeltaIOManager, LakehouseResource, MlflowResource, SparkResource, component
    from tracelake.lineage.record.tables import write_commit
    from tracelake.monitors.checks import NotNull, Range

    root = Path(tempfile.mkdtemp(prefix="tracelake-olbench-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"

    @component(checks=[Range("value", 0, 1000), NotNull("id")])
    def published(bench_source):
        return bench_source.where("value > 10")

    variants, timed = {}, {}
    for name in ("off", "jsonl", "http"):
        home = str(root / name)
        lake_res = LakehouseResource(home=home, spark=SparkResource(home=home), mlflow=MlflowResource(home=home))
        lake = lake_res.open()
        if name == "off":
            lake.listeners.clear()      # the same kind of lakehouse, nobody listening: the baseline
        else:
            if name == "http":          # the environment can say one thing per process: set the client here
                lake.listeners[0].use_client(OpenLineageClient(
                    config={"transport": {"type": "http", "url": endpoint.url, "timeout": 5}}))
            lake.listeners[0] = timed[name] = Timed(lake.listeners[0])
        spark = lake.spark()
        source = spark.createDataFrame(pd.DataFrame({"id": range(1000), "value": [i * 0.5 for i in range(1000)]}))
        write_commit(spark, lake.layout.table("bench_source"), source, run_id="setup", mode="overwrite",
                     user_metadata={"tracelake_run_id": "setup"})
        variants[name] = {"lake": lake, "resources": {"lakehouse": lake_res,
                                                      "delta_io_manager": DeltaIOManager(lakehouse=lake_res)}, "ms": []}

    @dg.asset(name="bench_source", io_manager_key="delta_io_manager")
    def bench_source_plain():
        raise AssertionError("not materialised in the benchmark")

    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    order = list(variants)
    for i in range(n + 3):
        for name in (order if i % 2 == 0 else order[::-1]):
            v = variants[name]
            t = time.perf_counter()
            dg.materialize([bench_source_plain, published], selection=[published], resources=v["resources"],
                           run_config=quiet)
            if i >= 3:              # the first three rounds warm Spark, MLflow and the client up
                v["ms"].append((time.perf_counter() - t) * 1000)
            elif i == 2:
                for t_ in timed.values():
                    t_.calls.clear()
    drain = {}
    for name in ("jsonl", "http"):
        t = time.perf_counter()
        assert variants[name]["lake"].listeners[0].inner.flush(300)
        drain[name] = (time.perf_counter() - t) * 1000
    out = {"n": n, "endpoint_received": endpoint.received}
    base = statistics.median(variants["off"]["ms"])
    out["off_median_ms"] = base
    for name in ("jsonl", "http"):
        per_run, current = [], 0.0        # every listener call of one materialisation, added up
        for call, ms in timed[name].calls:
            current += ms
            if call == "run_finished":
                per_run.append(current)
                current = 0.0
        out[name] = {
            "listener_median_ms": statistics.median(per_run), "listener_p95_ms": pct(per_run, 0.95),
            "listener_max_ms": max(per_run), "median_ms": statistics.median(variants[name]["ms"]),
            "ratio_to_off": statistics.median(variants[name]["ms"]) / base,
            "drain_after_last_run_ms": drain[name],
            "outbox": len(variants[name]["lake"].listeners[0].inner.outbox.pending()),
        }
    return out


def export_rate(years: int, trips_per_day: int, days: int | None, endpoint: Endpoint) -> dict:
    from history import ensure_history
    from openlineage.client import OpenLineageClient

    from tracelake.lineage import open_lakehouse
    from tracelake.lineage.openlineage.history import export_events, export_to
    from tracelake.lineage.openlineage.transport import send

    home, generated = ensure_history(years, trips_per_day, days=days)
    lake = open_lakehouse(home)
    out = {"home": home, "history": {k: generated.get(k) for k in ("runs", "first_day", "last_day", "trips_per_day")}}
    built = export_events(lake, lambda event: None)
    out["build_only"] = {"runs": built.runs, "events": built.events, "seconds": built.seconds,
                         "events_per_second": built.events_per_second}
    path = Path(tempfile.mkdtemp(prefix="tracelake-olexport-")) / "export.jsonl"
    path.unlink(missing_ok=True)
    client = OpenLineageClient(config={"transport": {"type": "file", "log_file_path": str(path), "append": True}})
    done = export_events(lake, lambda event: send(client, event, retries=0))
    out["file"] = {"events": done.events, "seconds": done.seconds, "events_per_second": done.events_per_second,
                   "bytes": path.stat().st_size}
    before = endpoint.received
    done = export_to(lake, lambda: OpenLineageClient(
        config={"transport": {"type": "http", "url": endpoint.url, "timeout": 30}}), workers=4, retries=2)
    out["http"] = {"events": done.events, "seconds": done.seconds, "events_per_second": done.events_per_second,
                   "received": endpoint.received - before, "workers": 4}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="materialisations per variant")
    parser.add_argument("--years", type=int, default=3, help="simulated years of history to export")
    parser.add_argument("--trips-per-day", type=int, default=2000, help="size of the history (as trace_latency.py)")
    parser.add_argument("--days", type=int, help="a shorter history (smoke runs); default: --years")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--skip-critical-path", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "openlineage_publish.json"))
    args = parser.parse_args()

    endpoint = Endpoint()
    result: dict = {}
    if not args.skip_critical_path:
        result["critical_path"] = critical_path(args.n, endpoint)
        print_critical_path(args.n, result["critical_path"])
    if not args.skip_export:
        ex = result["export"] = export_rate(args.years, args.trips_per_day, args.days, endpoint)
        b = ex["build_only"]
        span = f"{ex['history']['first_day']}..{ex['history']['last_day']}"
        print(f"\nExport of the simulated history {span}: {b['runs']} runs, {b['events']} events")
        print(f"  building the events only         {b['seconds']:7.1f} s   {b['events_per_second']:8.0f} events/s "
              "(the floor)")
        for name, label in (("file", "to a JSON-lines file"), ("http", "to HTTP on 127.0.0.1 (4 at once)")):
            e = ex[name]
            print(f"  {label:<32} {e['seconds']:7.1f} s   {e['events_per_second']:8.0f} events/s "
                  f"(ratio {e['seconds'] / b['seconds']:.2f}x to building only)")
    endpoint.close()
    save_results(args.out, result)
    return 0


def print_critical_path(n: int, cp: dict) -> None:
    print(f"\nOpenLineage publishing, {n} materialisations per variant, interleaved, one process, warm Spark")
    print(f"  publishing off (baseline)        median {cp['off_median_ms']:8.1f} ms per materialisation")
    for name, label in (("jsonl", "JSON lines (the default)"), ("http", "HTTP to 127.0.0.1")):
        v = cp[name]
        met = "met" if v["listener_median_ms"] <= 2.0 else "NOT met"
        print(f"  {label:<32} median {v['median_ms']:8.1f} ms (ratio {v['ratio_to_off']:.3f}x to off); "
              f"on the run's thread {v['listener_median_ms'] * 1000:.0f} us median, "
              f"{v['listener_p95_ms'] * 1000:.0f} us "
              f"p95, {v['listener_max_ms']:.2f} ms max - target <= 2 ms median {met}")
        print(f"  {'':<32} background: all delivered {v['drain_after_last_run_ms']:.0f} ms after the last run, "
              f"{v['outbox']} in the outbox")


if __name__ == "__main__":
    sys.exit(main())
