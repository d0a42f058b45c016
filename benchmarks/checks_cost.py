"""Cost of declared tests (issue 14).

Part 1 - a 10-million-row table, the same eight rules, two engines, one run, each engine in
its own process so peak memory is its own:
  * Spark: Tracelake's runner (every rule - the uniqueness test included - in one aggregation
    pass) on Spark local[2], the product's default 4 GB driver; session start printed apart;
  * pandas: the same rules with pandera (lazy validation) on the same data loaded into pandas.
Both must report the same failing-row counts per rule; the script checks that and prints wall
time and peak memory (Spark's includes the JVM, which does the work).

Part 2 - what the declared tests cost each reference-pipeline component, as a share of its
materialisation (the run record's duration), over ``--days`` simulated days of 2,000 trips
(drift and compliance jobs left out: they declare no tests). Counted as the tests' cost:
evaluating them and journaling their results (the recorder's ``checks_ms``) plus, for
components that quarantine rows, marking the rows each rule fails (a uniqueness rule's window
included), counting them per rule and committing the set-aside rows (timed around the real
functions; nothing is replaced). Not counted: the count that computes and caches the
function's rows before any test runs - the component's own work, which its commit would
otherwise do.

Run:  .venv/bin/python benchmarks/checks_cost.py [--rows 10000000] [--days 8]
Targets: Spark at least 2x faster than pandas and less memory; tests <= 25% of every
component's materialisation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


class _QuarantineTimer:
    """Times the quarantine steps of every run around the real functions (marking, per-rule
    counts, the commit of the set-aside rows), keyed by the run executing them."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.by_step: dict[str, dict[str, float]] = {}    # run id -> step -> ms

    def wrap(self, fn):
        from tracelake.lineage.record.run import current_run

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                try:
                    run_id = current_run().run_id
                except RuntimeError:   # not inside a run: nothing to attribute
                    run_id = ""
                ms = (time.perf_counter() - t) * 1000
                self.ms[run_id] = self.ms.get(run_id, 0.0) + ms
                steps = self.by_step.setdefault(run_id, {})
                steps[fn.__name__] = steps.get(fn.__name__, 0.0) + ms
        return timed

    def install(self) -> None:
        from tracelake.lineage.record import materialisation
        from tracelake.lineage.record.recorder import Recorder

        for name in ("mark_quarantine", "split_marked", "quarantine_counts"):
            setattr(materialisation, name, self.wrap(getattr(materialisation, name)))
        Recorder.commit_quarantine = self.wrap(Recorder.commit_quarantine)


def _collect_timings() -> list:
    """Every finished run's timings, from every recorder in this process: the demo's resources
    open their own Lakehouse (settings differ from a plain ``open_lakehouse(home)``), so reading
    one recorder's ``recent_timings`` afterwards would see none of the runs."""
    from tracelake.lineage.record.recorder import Recorder

    seen: list = []
    original = Recorder._finish

    def finish(self, run, *args, **kwargs):
        try:
            return original(self, run, *args, **kwargs)
        finally:
            seen.append((run.run_id, run.component, run.timings))

    Recorder._finish = finish
    return seen


def overhead(days: int) -> list[dict]:
    import dagster as dg

    from tracelake.jobs.demo import DemoConfig, run_demo
    from tracelake.jobs.pipeline import daily_drift_job
    from tracelake.lineage import open_lakehouse

    timer = _QuarantineTimer()
    timer.install()
    timings = _collect_timings()
    home = tempfile.mkdtemp(prefix="tracelake-checks-")
    run_demo(home, days, DemoConfig(trips_per_day=2000, faults=[]), instance=dg.DagsterInstance.ephemeral(),
             progress=False, skip_jobs=frozenset({daily_drift_job.name, "compliance_reports"}))
    lake = open_lakehouse(home)
    runs = lake.store.component_runs().set_index("run_id")
    per: dict[str, list[tuple[float, float, float]]] = {}
    steps: dict[str, dict[str, float]] = {}
    for run_id, component, run_timings in timings:
        if run_timings.checks_ms and run_id in runs.index and runs.at[run_id, "status"] == "succeeded":
            per.setdefault(component, []).append((run_timings.checks_ms, timer.ms.get(run_id, 0.0),
                                                  float(runs.at[run_id, "duration_ms"])))
            per_step = steps.setdefault(component, {})
            for step, ms in timer.by_step.get(run_id, {}).items():
                per_step[step] = per_step.get(step, 0.0) + ms
    rows = []
    for component, triples in sorted(per.items()):
        checks, quarantine = sum(c for c, _, _ in triples), sum(q for _, q, _ in triples)
        total = sum(t for _, _, t in triples)
        shares = sorted((c + q) / t for c, q, t in triples)
        rows.append({"component": component, "runs": len(triples), "checks_ms": checks / len(triples),
                     "quarantine_ms": quarantine / len(triples), "materialisation_ms": total / len(triples),
                     "share": (checks + quarantine) / total, "share_p50": shares[len(shares) // 2],
                     "share_max": shares[-1], "evaluate_share": checks / total,
                     "quarantine_steps_ms": {k: v / len(triples) for k, v in steps.get(component, {}).items()}})
    return rows


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
    print(f"  Spark local[2] (one pass)   {s['seconds']:7.1f} s   peak {s['peak_rss_mb']:7.0f} MB "
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
    print(f"\nDeclared tests as a share of materialisation time, reference pipeline, {days} days x 2,000 trips")
    print(f"  {'component':16s} runs  {'tests ms':>8s} {'quar. ms':>8s} {'run ms':>8s}  share  (p50, max)  "
          "target <= 25%")
    for r in rows:
        print(f"  {r['component']:16s} {r['runs']:4d}  {r['checks_ms']:8.0f} {r['quarantine_ms']:8.0f} "
              f"{r['materialisation_ms']:8.0f}  {r['share']:4.0%}   ({r['share_p50']:.0%}, {r['share_max']:.0%})  "
              f"{'met' if r['share'] <= 0.25 else 'NOT met'}")
    for r in rows:
        if r["quarantine_steps_ms"]:
            print(f"  {r['component']}'s quarantine, per run: " + ", ".join(
                f"{k} {v:.0f} ms" for k, v in sorted(r["quarantine_steps_ms"].items(), key=lambda kv: -kv[1])))
    worst = max(rows, key=lambda r: r["share"]) if rows else None
    if worst:
        print(f"  {'met' if worst['share'] <= 0.25 else 'NOT met'}: the largest share is {worst['component']}'s "
              f"{worst['share']:.0%} (target <= 25% for every component)")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--only", choices=["rules", "overhead"], help="run one part")
    parser.add_argument("--child", choices=["spark", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "checks_cost.json"))
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.data)
        return 0
    out: dict = {}
    if args.only != "overhead":
        out["rules"] = rules_part(args.rows)
    if args.only != "rules":
        out["overhead"] = overhead_part(args.days)
    save_results(args.out, out)
    return 0 if out.get("rules", {}).get("same_answers", True) else 1


if __name__ == "__main__":
    sys.exit(main())
