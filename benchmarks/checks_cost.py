"""Cost of declared tests (issue 14).

Part 1 - a 10-million-row table, the same eight rules, two engines, one run, each engine in
its own process so peak memory is its own:
  * Spark: Tracelake's runner (every row rule in one aggregation pass; on an input this large
    the uniqueness test's distinct key hashes in a pass of their own, then the exact count of
    the one duplicate) on Spark local[2], the product's default 4 GB driver; session start
    printed apart;
  * pandas: the same rules with pandera (lazy validation) on the same data loaded into pandas.
Both must report the same failing-row counts per rule; the script checks that and prints wall
time and peak memory (Spark's includes the JVM, which does the work).

Part 2 - what the declared tests cost each reference-pipeline component, as a share of its
materialisation: every simulated day (2,000 trips, drift and compliance jobs left out - they
declare no tests) is run twice in one process, into two lakehouses - once as shipped, once as if
no test were declared (no cache, no row count, no quarantine, no tests' pass; each Dagster check
still gets a passing result) - alternating which goes first; the first day is a warm-up. Runs
are paired by component and partition, and the share is (on - off) / on per pair: p50 with a
bootstrap 95% interval. Nothing is attributed by timing functions, so work that tests merely
move (computing the rows inside the tests' pass rather than the commit) is not counted, and
work they add (a cache, an extra Spark job, the quarantine commit) is.

Part 3 - the history tests on three simulated years of records (history.py's lakehouse, ~30,000
component runs; generated once and cached): RowCountVsHistory and ActionLimit judging a new
cleaned_trips / tip_predictions run, timed as they read now - that component's rows, a few
columns - beside building the whole audit index, which is what they read before (~0.5-1 s, on
every daily run of every component declaring one). The tests' results are held to the same
history by tests/monitors/checks; here the number of earlier runs each test compared with is printed.

Run:  .venv/bin/python benchmarks/checks_cost.py [--rows 10000000] [--days 8] [--only rules|overhead|history]
Targets: Spark at least 2x faster than pandas and less memory; tests <= 25% of every
component's materialisation; a history test at least 10x cheaper than building the whole index
on three years (its cost follows its own component's runs, not every record's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import save_results

RULES = ["amount_range", "tip_range", "distance_range", "status_allowed", "code_pattern", "tip_le_3x_amount",
         "order_id_not_null", "order_id_unique"]


def make_data(path: str, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    chunk = 1_000_000
    writer = None
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ids = np.arange(start, start + n)
        amount = np.round(rng.gamma(4, 6, n), 2)
        amount[rng.random(n) < 0.001] = -1.0                       # out of range
        tip = np.round(amount * rng.uniform(0, 0.3, n), 2)
        tip[rng.random(n) < 0.0005] = 999.0                        # breaks tip <= 3 x amount
        status = np.array(["open", "paid", "void"])[rng.integers(0, 3, n)]
        status[rng.random(n) < 0.0002] = "???"
        code = np.char.add(np.array(["ABC-", "XYZ-", "QRS-"])[rng.integers(0, 3, n)],
                           rng.integers(10, 99, n).astype(str))
        code[rng.random(n) < 0.0003] = "bad"
        order_id = np.char.add("o-", ids.astype(str)).astype(object)
        order_id[rng.random(n) < 0.0001] = None
        if start == 0:
            order_id[5] = order_id[6]                              # one duplicate key
        table = pa.table({"order_id": pa.array(order_id, pa.string()), "amount": amount, "tip": tip,
                          "distance": np.round(rng.gamma(2, 3, n), 2), "status": status, "code": code,
                          "vendor": rng.integers(0, 50, n), "ts": rng.integers(1_700_000_000, 1_800_000_000, n)})
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def spark_rules():
    from tracelake.monitors.checks import AllowedValues, Expression, NotNull, Pattern, Range, Unique

    return [Range("amount", 0, 10_000), Range("tip", 0, 1000), Range("distance", 0, 500),
            AllowedValues("status", ["open", "paid", "void"]), Pattern("code", r"^[A-Z]{3}-\d{2}$"),
            Expression("tip_le_3x_amount", "tip <= amount * 3"), NotNull("order_id"), Unique("order_id")]


def run_spark(path: str) -> dict:
    os.environ.setdefault("TRACELAKE_SPARK_MASTER", "local[2]")
    from tracelake.lineage import get_spark, load_settings
    from tracelake.lineage.record.checks import CheckContext, evaluate_checks

    t = time.perf_counter()
    spark = get_spark(load_settings(home=tempfile.mkdtemp()))   # the product's driver heap (4g)
    spark.range(10).count()  # session start is printed, not counted as the rules' cost
    startup = time.perf_counter() - t

    t = time.perf_counter()
    df = spark.read.parquet(path)
    # The runner as a materialisation calls it; the row count comes from the same pass.
    ctx = CheckContext(run=None, lake=None, frame=df, rows=0)
    results = evaluate_checks(spark_rules(), ctx)
    seconds = time.perf_counter() - t
    broken = [r.observed_text for r in results if (r.observed_text or "").startswith("the test itself failed")]
    if broken:
        raise RuntimeError(f"a rule could not be evaluated: {broken[0]}")
    failing = {r.name: int(r.failing_rows or 0) for r in results}
    jvm_pid = spark._jvm.java.lang.ProcessHandle.current().pid()
    jvm_peak_kb = _peak_rss_kb(jvm_pid)  # VmHWM: the JVM's own high-water mark
    spark.stop()
    return {"seconds": seconds, "startup_s": startup, "failing": failing, "jvm_peak_kb": jvm_peak_kb}


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def run_pandas(path: str) -> dict:
    import pandas as pd
    import pandera.pandas as pa_pd

    t = time.perf_counter()
    frame = pd.read_parquet(path)
    schema = pa_pd.DataFrameSchema({
        "amount": pa_pd.Column(float, pa_pd.Check.in_range(0, 10_000, name="amount_range")),
        "tip": pa_pd.Column(float, pa_pd.Check.in_range(0, 1000, name="tip_range")),
        "distance": pa_pd.Column(float, pa_pd.Check.in_range(0, 500, name="distance_range")),
        "status": pa_pd.Column(str, pa_pd.Check.isin(["open", "paid", "void"], name="status_allowed")),
        "code": pa_pd.Column(str, pa_pd.Check.str_matches(r"^[A-Z]{3}-\d{2}$", name="code_pattern")),
        "order_id": pa_pd.Column(str, nullable=True, unique=True),
    }, checks=[pa_pd.Check(lambda d: d["tip"] <= d["amount"] * 3, name="tip_le_3x_amount")])
    failing = dict.fromkeys(RULES, 0)
    by_column = {"amount": "amount_range", "tip": "tip_range", "distance": "distance_range",
                 "status": "status_allowed", "code": "code_pattern"}
    try:
        schema.validate(frame, lazy=True)
    except pa_pd.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        for (column, check), group in cases.groupby(["column", "check"], dropna=False):
            if check == "tip_le_3x_amount":
                continue  # a frame-wide check: counted once per row below
            if check == "field_uniqueness":
                # pandera lists every row of a duplicated key; Tracelake counts the extra rows.
                failing["order_id_unique"] = int(len(group) - group["failure_case"].nunique())
            elif column in by_column:
                failing[by_column[column]] = len(group)
        frame_wide = cases[cases["check"] == "tip_le_3x_amount"]
        failing["tip_le_3x_amount"] = int(frame_wide["index"].nunique())
    failing["order_id_not_null"] = int(frame["order_id"].isna().sum())
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "failing": failing}


def _child(engine: str, path: str) -> None:
    out = run_spark(path) if engine == "spark" else run_pandas(path)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = out.pop("jvm_peak_kb", 0)
    # Spark: the driver JVM plus this Python process (which only holds a few aggregates; most of
    # it is the imported libraries). Python workers Spark forks are short-lived and small here.
    out["peak_rss_mb"] = (own + kids) / 1024
    out["python_rss_mb"], out["jvm_rss_mb"] = own / 1024, kids / 1024
    print("RESULT " + json.dumps(out))


class _TestsSwitch:
    """Runs the reference pipeline's components with their declared tests on (as shipped) or
    off - as if no test were declared: no cache, no count, no quarantine, no tests' pass. The
    Dagster asset checks still get a (passing) result each, so the jobs run unchanged."""

    def __init__(self) -> None:
        self.off = False

    def install(self) -> None:
        from tracelake.lineage.record import materialisation
        from tracelake.lineage.record.checks import CheckResult

        cls = materialisation.Materialisation
        prepare, evaluate = cls.prepare_batch, cls.evaluate_checks
        switch = self

        def prepare_batch(m, run, result):
            if not switch.off:
                return prepare(m, run, result)
            df = materialisation._to_spark(result, m.lake.spark, m.spec.name)
            return materialisation._Batch(df, [(f.name, f.dataType.simpleString()) for f in df.schema.fields])

        def evaluate_checks(m, run, batch):
            if not switch.off:
                return evaluate(m, run, batch)
            return [CheckResult(name=c.name, passed=True, severity=c.severity, blocking=c.blocking)
                    for c in m.spec.checks]

        cls.prepare_batch, cls.evaluate_checks = prepare_batch, evaluate_checks


def overhead(days: int) -> list[dict]:
    """Each simulated day run twice - tests on, tests off - in two lakehouses, alternating which
    goes first; the first day (tables created, JIT cold) is a warm-up. Paired by component and
    partition: the tests' cost is the difference of the two materialisations' recorded durations."""
    import dagster as dg

    from tracelake.jobs.demo import DemoConfig, run_demo
    from tracelake.jobs.pipeline import daily_drift_job
    from tracelake.lineage import open_lakehouse

    switch = _TestsSwitch()
    switch.install()
    homes = {"on": tempfile.mkdtemp(prefix="tracelake-tests-on-"), "off": tempfile.mkdtemp(prefix="tracelake-tests-off-")}
    config = DemoConfig(trips_per_day=2000, faults=[])
    instance = dg.DagsterInstance.ephemeral()
    for day in range(days + 1):
        for mode in (("on", "off") if day % 2 == 0 else ("off", "on")):
            switch.off = mode == "off"
            run_demo(homes[mode], 1, config, instance=instance, progress=False,
                     skip_jobs=frozenset({daily_drift_job.name, "compliance_reports"}))
    switch.off = False
    durations = {}
    for mode, home in homes.items():
        runs = open_lakehouse(home).store.component_runs()
        runs = runs[runs["status"] == "succeeded"]
        durations[mode] = {(r.component, r.partition_key): float(r.duration_ms) for r in runs.itertuples()}
    first = min(p for _, p in durations["on"] if p)
    rows = []
    for component in sorted({c for c, _ in durations["on"]}):
        pairs = [(on, durations["off"][key]) for key, on in durations["on"].items()
                 if key[0] == component and key in durations["off"] and key[1] and not key[1].startswith(first[:10])]
        if not pairs:
            continue
        shares = sorted((on - off) / on for on, off in pairs)
        low, high = _median_ci(shares)
        rows.append({"component": component, "runs": len(pairs), "on_ms": statistics.median(on for on, _ in pairs),
                     "off_ms": statistics.median(off for _, off in pairs),
                     "added_ms": statistics.median(on - off for on, off in pairs),
                     "share": statistics.median(shares), "share_ci95": [low, high]})
    return rows


def _median_ci(values: list[float], draws: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of the median (seeded: the same data gives the same interval)."""
    import random

    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def rules_part(rows: int) -> dict:
    data = str(Path(tempfile.mkdtemp(prefix="tracelake-rules-")) / "orders.parquet")
    t = time.time()
    make_data(data, rows)
    size_mb = Path(data).stat().st_size / 1e6
    print(f"{rows:,} rows x 8 columns written in {time.time() - t:.0f} s ({size_mb:.0f} MB Parquet)")
    results = {}
    for engine in ("spark", "pandas"):
        proc = subprocess.run([sys.executable, __file__, "--child", engine, "--data", data],
                              capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            raise RuntimeError(f"{engine} failed:\n{proc.stderr[-2000:]}")
        results[engine] = json.loads(line[0][7:])
    Path(data).unlink(missing_ok=True)
    same = results["spark"]["failing"] == results["pandas"]["failing"]
    s, p = results["spark"], results["pandas"]
    speed, memory = p["seconds"] / s["seconds"], s["peak_rss_mb"] / p["peak_rss_mb"]
    print(f"\nEight declared rules on {rows:,} rows (same answers: {'yes' if same else 'NO'})")
    print(f"  Spark local[2] (runner)     {s['seconds']:7.1f} s   peak {s['peak_rss_mb']:7.0f} MB "
          f"(JVM {s['jvm_rss_mb']:.0f} MB + Python {s['python_rss_mb']:.0f} MB); session start {s['startup_s']:.1f} s "
          "not counted")
    print(f"  pandas + pandera (baseline) {p['seconds']:7.1f} s   peak {p['peak_rss_mb']:7.0f} MB")
    print(f"  {'met' if speed >= 2 else 'NOT met'}: Spark {speed:.2f}x faster than pandas (target >= 2x; "
          f"{p['seconds'] / (s['seconds'] + s['startup_s']):.2f}x counting Spark's start)")
    print(f"  {'met' if memory < 1 else 'NOT met'}: Spark uses {memory:.2f}x pandas' peak memory (target < 1x)")
    if not same:
        print(f"  failing rows differ: spark {s['failing']} pandas {p['failing']}")
    print(f"  failing rows per rule: {s['failing']}")
    return {"engines": results, "same_answers": same, "speedup": speed, "memory_ratio": memory}


def overhead_part(days: int) -> list[dict]:
    rows = overhead(days)
    print(f"\nDeclared tests as a share of materialisation time, reference pipeline, {days} days x 2,000 trips, "
          f"tests on vs off paired by partition (load {os.getloadavg()[0]:.1f})")
    print(f"  {'component':16s} pairs  {'on ms':>7s} {'off ms':>7s} {'added':>7s}  share p50 (CI95)       "
          "target <= 25%")
    for r in rows:
        low, high = r["share_ci95"]
        print(f"  {r['component']:16s} {r['runs']:5d}  {r['on_ms']:7.0f} {r['off_ms']:7.0f} {r['added_ms']:7.0f}  "
              f"{r['share']:5.0%}  ({low:4.0%} .. {high:4.0%})   {'met' if r['share'] <= 0.25 else 'NOT met'}")
    worst = max(rows, key=lambda r: r["share"]) if rows else None
    if worst:
        print(f"  {'met' if worst['share'] <= 0.25 else 'NOT met'}: the largest share is {worst['component']}'s "
              f"{worst['share']:.0%} (target <= 25% for every component)")
    return rows


def history_part(samples: int = 15) -> dict:
    """The history tests' reads on three years of records: narrowed (now) vs the whole index."""
    from types import SimpleNamespace

    from history import ensure_history

    from tracelake.lineage import open_lakehouse
    from tracelake.lineage.query.graph import AuditIndex
    from tracelake.lineage.record.checks import CheckContext
    from tracelake.monitors.checks import ActionLimit, RowCountVsHistory

    home, _ = ensure_history(3, 2000)
    lake = open_lakehouse(home)
    cases = {"cleaned_trips": RowCountVsHistory(tolerance=0.5, window=7),
             "tip_predictions": ActionLimit("positive_rate", "avg(predicted_tip)", 0.15, window=7)}
    out = {}
    print(f"\nHistory tests on three simulated years ({home})")
    for component, test in cases.items():
        run = SimpleNamespace(component=component, run_id="r-benchmark", partition_key="2099-01-01",
                              log_metric=lambda *a: None)
        stats = {"value": 0.5}
        narrowed, whole = [], []
        for _ in range(samples):
            ctx = CheckContext(run, lake, frame=None, rows=2000)
            t = time.perf_counter()
            result = test.evaluate(ctx, stats)
            narrowed.append(time.perf_counter() - t)
            t = time.perf_counter()
            index = AuditIndex(lake)
            whole.append(time.perf_counter() - t)
        runs = index.runs
        mine = runs[(runs["component"] == component) & (runs["status"] == "succeeded")]
        n, w = statistics.median(narrowed[1:]) * 1000, statistics.median(whole[1:]) * 1000
        out[component] = {"test": test.name, "narrowed_ms": n, "whole_index_ms": w, "runs_of_component": len(mine),
                          "runs_recorded": len(runs), "history_seen": len((result.details or {}).get("history", []))}
        print(f"  {component:16s} {test.name:28s} {n:6.1f} ms p50 reading its own {len(mine):,} runs "
              f"(compared with {out[component]['history_seen']}; whole index of {len(runs):,}: {w:6.0f} ms, "
              f"{w / n:.0f}x)   {'met' if w / n >= 10 else 'NOT met'} (>= 10x)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--only", choices=["rules", "overhead", "history"], help="run one part")
    parser.add_argument("--child", choices=["spark", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "checks_cost.json"))
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.data)
        return 0
    out: dict = {}
    if args.only in (None, "rules"):
        out["rules"] = rules_part(args.rows)
    if args.only in (None, "overhead"):
        out["overhead"] = overhead_part(args.days)
    if args.only in (None, "history"):
        out["history"] = history_part()
    save_results(args.out, out)
    return 0 if out.get("rules", {}).get("same_answers", True) else 1


if __name__ == "__main__":
    sys.exit(main())
