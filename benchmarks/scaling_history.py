"""Trace latency as the recorded history grows from 3 to 30 simulated years (docs/scaling.md).

What grows with the years is the audit record: every lineage question first indexes every
component run ever recorded (``AuditIndex``), and the CLI reads the whole ``component_runs``
table to do so. The data path of one question does not grow with the years: a trace reads one
version of each table on its path (through the Delta checkpoint), whatever came before.

So the histories are built in two parts, and the benchmark says so:
- **real recent history**: 60 simulated days made by ``history.py`` (the product's recorder,
  one Delta commit per run, hourly predictions, re-runs, a rolled-back run) - the days the
  questions are asked about;
- **older history, replicated**: those 60 days' audit records (component runs and check
  results) copied back in time until the record spans Y years - fresh run ids, shifted start
  times, and tables and models renamed ``<name>__y<k>`` so no old record claims a live version.
  ~23 runs per simulated day, as the real cadence has. They are written to the Delta audit
  tables in large batches and compacted + checkpointed, as the hourly maintenance leaves them.

Measured per size: the index build, a warm trace (one hour of predictions back to raw trips)
and a warm impact (one daily ETL run forward), in one process; and the cold CLI (`tracelake
runs --limit 1`, `tracelake trace`), each a new process. Then a linear fit per figure
(seconds = a + b x years), the model docs/scaling.md extrapolates with.

Run:  .venv/bin/python benchmarks/scaling_history.py [--years 3,10,30] [--warm 5] [--cold 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import save_results

ROOT = Path(__file__).with_name("results") / "scaling_history"
BASE_DAYS, BASE_TRIPS = 60, 200


def _shift(rows: list[dict], k: int, days: int, ids: dict[str, str]) -> list[dict]:
    """Replica ``k`` of the base records: ``k * days`` days earlier, fresh ids, renamed tables."""
    delta = timedelta(days=k * days)
    out = []
    for r in rows:
        r = dict(r)
        for key in ("run_id", "dagster_run_id"):
            if r.get(key):
                r[key] = ids.setdefault(r[key], f"{r[key]}-y{k}")
        for key in ("started_at", "ended_at", "recorded_at", "evaluated_at"):
            if r.get(key) is not None and hasattr(r[key], "tzinfo"):
                r[key] = r[key] - delta
        if r.get("output_table"):
            r["output_table"] = f"{r['output_table']}__y{k}"
        if r.get("inputs"):
            r["inputs"] = [{**i, "name": f"{i['name']}__y{k}"} for i in r["inputs"]]
        if r.get("models"):  # model versions too: no old record may claim a live model version
            r["models"] = [{**m, "name": f"{m['name']}__y{k}"} for m in r["models"]]
        r["journal_id"] = f"replica-{k}"
        out.append(r)
    return out


def build(years: int, base_home: str) -> str:
    """A copy of the base history whose audit record spans ``years`` years (cached)."""
    from deltalake import DeltaTable, write_deltalake

    from tracelake.lineage import open_lakehouse

    home = ROOT / f"{years}y"
    if (home / "scaled.json").exists():
        return str(home)
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(base_home, home)
    lake = open_lakehouse(str(home))
    lake.flush()
    replicas = max(0, round(years * 365 / BASE_DAYS) - 1)
    t0 = time.time()
    for table in ("component_runs", "check_results"):
        path = lake.store.path(table)
        base = DeltaTable(path).to_pyarrow_table()
        rows, schema = base.to_pylist(), base.schema
        ids: dict[str, str] = {}
        batch: list[dict] = []
        for k in range(1, replicas + 1):
            batch += _shift(rows, k, BASE_DAYS, ids)
            if len(batch) >= 100_000 or k == replicas:
                write_deltalake(path, pa.Table.from_pylist(batch, schema=schema), mode="append")
                batch = []
        lake.store.compact(table)
    runs = DeltaTable(lake.store.path("component_runs")).to_pyarrow_table(columns=["run_id"]).num_rows
    (home / "scaled.json").write_text(json.dumps({"years": years, "replicas": replicas, "runs": runs,
                                                  "seconds": round(time.time() - t0, 1)}))
    return str(home)


def _questions(lake) -> tuple[str, str]:
    runs = lake.store.component_runs()
    live = runs[~runs["run_id"].str.contains("-y", regex=False)]
    hours = sorted(live.loc[live["component"] == "tip_predictions", "partition_key"])
    etl = live[(live["component"] == "cleaned_trips") & (live["status"] == "succeeded")].sort_values("partition_key")
    return f"_tl_partition = '{hours[len(hours) // 2]}'", etl["run_id"].iloc[len(etl) // 2]


def measure(home: str, warm: int, cold: int) -> dict:
    from deltalake import DeltaTable

    from tracelake.lineage.lakehouse import forget_lakehouse, open_lakehouse
    from tracelake.lineage.query.graph import AuditIndex
    from tracelake.lineage.query.impact import impact
    from tracelake.lineage.query.trace import LineageWalker, trace

    forget_lakehouse(home)
    lake = open_lakehouse(home)
    where, etl_run = _questions(lake)
    out: dict = {}

    def timed(name: str, fn) -> object:
        """Wall and CPU seconds (CPU does not count waiting for a core on a shared machine)."""
        t, c = time.perf_counter(), time.process_time()
        value = fn()
        out.setdefault(f"{name}_s", []).append(time.perf_counter() - t)
        out.setdefault(f"{name}_cpu", []).append(time.process_time() - c)
        return value

    for _ in range(warm + 1):
        timed("index", lambda: AuditIndex(lake))
        walker = LineageWalker(lake)
        out["nodes"] = len(timed("trace", lambda w=walker: trace(lake, "tip_predictions", where, walker=w)).nodes)
        out["impact_runs"] = len(timed("impact", lambda w=walker: impact(lake, etl_run, walker=w)).affected_runs())
    for key in [k for k in out if k.endswith(("_s", "_cpu"))]:
        out[key] = out[key][1:]  # the first is the warm-up
    cli = [str(Path(sys.executable).with_name("tracelake")), "--home", home]
    for name, args in (("cli_runs", ["runs", "--limit", "1", "--json"]),
                       ("cli_trace", ["trace", "tip_predictions", "--where", where, "--json"])):
        for _ in range(cold):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([*cli, *args], check=True, capture_output=True)
            out.setdefault(f"{name}_s", []).append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            out.setdefault(f"{name}_cpu", []).append(used)
    dt = DeltaTable(lake.store.path("component_runs"))
    out["component_runs_bytes"] = sum(pa.table(dt.get_add_actions(flatten=True)).column("size_bytes").to_pylist())
    out["runs"] = dt.to_pyarrow_table(columns=["run_id"]).num_rows
    return out


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares a + b*x."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return my - b * mx, b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", default="3,10,30")
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "scaling_history.json"))
    args = parser.parse_args()
    from history import ensure_history

    base_home, gen = ensure_history(trips_per_day=BASE_TRIPS, days=BASE_DAYS)
    load = os.getloadavg()
    result: dict = {"base": {"home": base_home, "runs": gen["runs"], "days": BASE_DAYS}, "sizes": {}}
    print(f"base: {BASE_DAYS} real simulated days, {gen['runs']} runs ({base_home})")
    for years in (int(y) for y in args.years.split(",")):
        t = time.time()
        home = build(years, base_home)
        m = measure(home, args.warm, args.cold)
        m["build_s"] = time.time() - t
        result["sizes"][years] = m
        med = {k: statistics.median(v) for k, v in m.items() if k.endswith(("_s", "_cpu")) and isinstance(v, list)}
        print(f"{years:>3} years: {m['runs']:>7} runs, component_runs {m['component_runs_bytes'] / 1e6:6.1f} MB; "
              + ", ".join(f"{k} {v:.2f}" for k, v in med.items()), flush=True)
    for key in ("index_cpu", "trace_cpu", "impact_cpu", "cli_runs_cpu", "cli_trace_cpu", "cli_trace_s"):
        a, b = fit([(y, statistics.median(m[key])) for y, m in result["sizes"].items()])
        result.setdefault("model", {})[key] = {"a_s": a, "b_s_per_year": b}
        print(f"  model {key:<13} {a:6.2f} s + {b * 1000:7.1f} ms x years")
    result.update(loadavg_start=load, loadavg_end=os.getloadavg(), cpu_count=os.cpu_count())
    save_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
