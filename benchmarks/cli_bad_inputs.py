"""Bad command lines: how many of them get a clean answer (issue: bad CLI input).

Tries every bad input of the table in ``tests/cli/bad_inputs.py`` (every command: bad numbers,
times, ids, names, windows, paths, homes ...) as a user would - a fresh ``tracelake`` process
each - against a private copy of a demo lakehouse, and counts the clean ones: exit code 2,
exactly one line on stderr naming the problem, no traceback, nothing written in the working
folder, in the paths the case names, or in the lakehouse.

Baseline measured in the same run: `tracelake runs --limit 1`, a good answer's cost (interpreter
start and imports included); a bad input should cost no more than that (no Spark, no lakehouse
read when the syntax alone is wrong).

Run:  .venv/bin/python benchmarks/cli_bad_inputs.py [--home LAKEHOUSE] [--no-spark]
      (default: ./lakehouse if it holds a demo, else a 15-day demo with the ETL bug is simulated
      into a temporary folder first, ~10 minutes). The lakehouse is copied first; the original
      is never written to.
Target: all of them clean.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import save_results

TABLE = Path(__file__).resolve().parents[1] / "tests" / "cli" / "bad_inputs.py"


def _table():
    spec = importlib.util.spec_from_file_location("tracelake_cli_bad_inputs", TABLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _demo(home: Path, days: int) -> None:
    import dagster as dg

    from tracelake.jobs.demo import DemoConfig, run_demo

    instance_dir = home.parent / "dagster"
    instance_dir.mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.local_temp(str(instance_dir))
    print(f"simulating {days} demo days into {home} (once) ...", flush=True)
    result = run_demo(str(home), days, DemoConfig(seed=11, trips_per_day=400, faults=["etl_bug@2026-01-14"]),
                      instance=instance, progress=False, skip_jobs=frozenset({"compliance_reports"}))
    print(f"  simulated in {result['seconds']} s")


def _baseline(ws, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "tracelake.jobs.cli", "--home", ws.home, "runs", "--limit", "1"],
                             capture_output=True, text=True, env=ws.env)
        if out.returncode != 0:
            raise SystemExit(f"the baseline `tracelake runs` failed: {out.stderr.strip()[-400:]}")
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="a demo lakehouse (default: ./lakehouse, else a fresh 15-day demo)")
    parser.add_argument("--days", type=int, default=15, help="days to simulate when no demo lakehouse is given")
    parser.add_argument("--workers", type=int, default=3, help="cases tried at once (fresh processes)")
    parser.add_argument("--no-spark", action="store_true", help="leave out the few inputs Spark must judge")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "cli_bad_inputs.json"))
    args = parser.parse_args()

    table = _table()
    work = Path(tempfile.mkdtemp(prefix="tracelake-bad-inputs-"))
    source = Path(args.home) if args.home else Path("lakehouse")
    if not (source / "audit" / "component_runs").exists() and not (source / "_journal").exists():
        source = work / "demo" / "lakehouse"
        _demo(source, args.days)
    ws = table.prepare(work / "bench", str(source))
    cases = [c for c in table.CASES if not (args.no_spark and c.spark)]
    print(f"trying {len(cases)} bad command lines against a copy of {source} ...", flush=True)
    base = _baseline(ws)
    before = table.snapshot(ws.home)
    t = time.perf_counter()
    outcomes = table.run_all(ws, cases, workers=args.workers)
    wall = time.perf_counter() - t
    after = table.snapshot(ws.home)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))

    clean = [o for o in outcomes if o.clean]
    by_owner: dict[str, list[int]] = {}
    for o in outcomes:
        by_owner.setdefault(o.case.owner, [0, 0])
        by_owner[o.case.owner][0] += o.clean
        by_owner[o.case.owner][1] += 1
    parse_time = [o.seconds for o in outcomes if not o.case.spark]
    spark_time = [o.seconds for o in outcomes if o.case.spark]
    print()
    for o in outcomes:
        if not o.clean:
            print("NOT CLEAN " + o.describe())
    if changed:
        print(f"NOT CLEAN: the lakehouse changed under bad input: {changed[:10]}")
    result = {
        "lakehouse": str(source), "tried": len(outcomes), "clean": len(clean) if not changed else 0,
        "by_owner": {k: {"clean": v[0], "tried": v[1]} for k, v in by_owner.items()},
        "not_clean": {o.case.name: o.problems for o in outcomes if not o.clean},
        "known_in_other_commands": {c.name: c.known for c in cases if c.known},
        "lakehouse_changed": changed,
        "baseline_runs_cli_p50_s": base,
        "bad_input_p50_s": statistics.median(parse_time) if parse_time else None,
        "bad_input_max_s": max(parse_time) if parse_time else None,
        "spark_judged_p50_s": statistics.median(spark_time) if spark_time else None,
        "wall_s": wall, "workers": args.workers, "cpus": os.cpu_count(),
    }
    r = result
    print(f"\nBad CLI input, every command, fresh process each ({r['workers']} at a time, {r['cpus']} CPUs):")
    print(f"  bad inputs clean / tried: {r['clean']} / {r['tried']}  (target: all)")
    print("  by command group: " + ", ".join(f"{k} {v['clean']}/{v['tried']}" for k, v in r["by_owner"].items()))
    if r["bad_input_p50_s"] is not None:
        print(f"  a bad input answered in p50 {r['bad_input_p50_s']:.2f} s (max {r['bad_input_max_s']:.1f} s) "
              "vs a good "
              f"`tracelake runs` {base:.2f} s: {r['bad_input_p50_s'] / base:.2f}x")
    if spark_time:
        print(f"  errors only Spark can find (1/0, a bad CAST): p50 {r['spark_judged_p50_s']:.1f} s, "
              "Spark's start included")
    print(f"  lakehouse unchanged: {'yes' if not changed else 'NO'}; all tried in {wall:.0f} s")
    save_results(args.out, result)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if r["clean"] == r["tried"] else 1


if __name__ == "__main__":
    sys.exit(main())
