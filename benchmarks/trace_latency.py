"""Trace and impact latency at history scale (issue: lineage).

Generates three simulated years of audit history in bulk (~1,100 daily ETL runs per stage, ~155
weekly trainings, ~26,000 hourly inference runs, with real Delta tables whose rows carry their
run ids), then times:

- cold: a fresh `tracelake trace` / `tracelake impact` process (interpreter start, imports,
  audit index build, the query) - what an on-call engineer waits for;
- warm: the same questions in one process with the index already built (a notebook, a service);

and prints the history size: runs, audit bytes per run after compaction. It also times
`tracelake report decision` (the regulator's question, compliance reports) cold, target < 60 s. Baselines measured in
the same run: a bare `python -c "import tracelake.lineage"` and `tracelake runs --limit 1`
(reading the audit store) - the floor any CLI answer pays.

Run:  .venv/bin/python benchmarks/trace_latency.py
Targets: p50 <= 1 s warm, <= 10 s cold (Marquez users report 10-15 s for its lineage endpoint).
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

sys.path.insert(0, str(Path(__file__).parent))

from history import generate  # noqa: E402


def _time_cmd(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()[-400:]}")
    return time.perf_counter() - t


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="reuse (or create) the history here instead of a temporary folder")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "trace_latency.json"))
    args = parser.parse_args()

    from deltalake import DeltaTable

    from tracelake.lineage import open_lakehouse
    from tracelake.lineage.query.impact import impact
    from tracelake.lineage.query.trace import LineageWalker, trace

    home = args.home or tempfile.mkdtemp(prefix="tracelake-history-")
    if not (Path(home) / "audit" / "component_runs").exists():
        print(f"generating three years of history under {home} ...", flush=True)
        gen = generate(home)
        print(f"  {gen['runs']} runs in {gen['seconds']} s: {gen['by_component']}")
    lake = open_lakehouse(home)
    walker = LineageWalker(lake)
    runs = walker.index.runs
    n_runs = len(runs)
    days = sorted(runs.loc[runs["component"] == "cleaned_trips", "partition_key"])
    hours = sorted(runs.loc[runs["component"] == "tip_predictions", "partition_key"])
    step_d, step_h = len(days) // (args.repeat + 1), len(hours) // (args.repeat + 1)
    etl_runs = [runs[(runs["component"] == "cleaned_trips") & (runs["partition_key"] == days[(i + 1) * step_d])]["run_id"].iloc[0]
                for i in range(args.repeat)]
    slices = [f"_tl_partition = '{hours[(i + 1) * step_h]}'" for i in range(args.repeat)]

    env = {**os.environ, "TRACELAKE_HOME": home}
    cli = [str(Path(sys.executable).with_name("tracelake"))]
    base_import = [_time_cmd([sys.executable, "-c", "import tracelake.lineage"], env) for _ in range(3)]
    base_runs = [_time_cmd(cli + ["runs", "--limit", "1", "--json"], env) for _ in range(3)]
    cold_trace = [_time_cmd(cli + ["trace", "tip_predictions", "--where", s, "--json"], env) for s in slices]
    cold_impact = [_time_cmd(cli + ["impact", r, "--json"], env) for r in etl_runs]
    # The regulator's question (compliance reports): model, training set, upstream runs, feature values, failed checks.
    cold_decision = [_time_cmd(cli + ["report", "decision", "tip_predictions", "--where", s, "--json"], env)
                     for s in slices[:3]]

    trace(lake, "tip_predictions", slices[0], walker=walker)  # fill the reader caches once
    impact(lake, etl_runs[0], walker=walker)
    warm_trace, warm_impact, sizes = [], [], []
    for s in slices:
        t = time.perf_counter()
        res = trace(lake, "tip_predictions", s, walker=walker)
        warm_trace.append(time.perf_counter() - t)
        sizes.append(len(res.nodes))
    for r in etl_runs:
        t = time.perf_counter()
        res = impact(lake, r, walker=walker)
        warm_impact.append(time.perf_counter() - t)
    impact_runs = len(res.affected_runs())

    audit_path = Path(lake.store.path("component_runs"))
    live = DeltaTable(str(audit_path))
    live_bytes = sum(a for a in live.get_add_actions(flatten=True).column("size_bytes").to_pylist())
    result = {
        "history_runs": n_runs,
        "audit_live_bytes": live_bytes,
        "audit_bytes_per_run": live_bytes / n_runs,
        "audit_on_disk_bytes": _dir_bytes(audit_path),
        "trace_nodes": statistics.median(sizes),
        "impact_runs": impact_runs,
        "baseline_import_p50_s": statistics.median(base_import),
        "baseline_runs_cli_p50_s": statistics.median(base_runs),
        "cold_trace_p50_s": statistics.median(cold_trace),
        "cold_impact_p50_s": statistics.median(cold_impact),
        "warm_trace_p50_s": statistics.median(warm_trace),
        "warm_impact_p50_s": statistics.median(warm_impact),
        "cold_decision_p50_s": statistics.median(cold_decision),
        "cold_decision_max_s": max(cold_decision),
    }
    r = result
    print(f"\nLineage latency over {n_runs} recorded runs (3 simulated years), {args.repeat} questions each")
    print(f"  audit store: {r['audit_bytes_per_run']:.0f} bytes per run after compaction "
          f"({r['audit_live_bytes'] / 1e6:.1f} MB live, {r['audit_on_disk_bytes'] / 1e6:.1f} MB on disk with history)")
    print(f"  baselines: python + import {r['baseline_import_p50_s']:.2f} s, `tracelake runs` {r['baseline_runs_cli_p50_s']:.2f} s")
    print(f"  trace  (slice of one hour of predictions, {r['trace_nodes']:.0f} nodes): cold p50 {r['cold_trace_p50_s']:.2f} s "
          f"({r['cold_trace_p50_s'] / r['baseline_runs_cli_p50_s']:.2f}x `runs`; target <= 10 s), "
          f"warm p50 {r['warm_trace_p50_s']:.3f} s (target <= 1 s)")
    print(f"  impact (one daily ETL run, {impact_runs} downstream runs): cold p50 {r['cold_impact_p50_s']:.2f} s "
          f"({r['cold_impact_p50_s'] / r['baseline_runs_cli_p50_s']:.2f}x `runs`), warm p50 {r['warm_impact_p50_s']:.3f} s")
    print(f"  report decision (one hour of predictions: model, training set, upstream runs, feature values, checks): "
          f"cold p50 {r['cold_decision_p50_s']:.2f} s, max {r['cold_decision_max_s']:.2f} s "
          f"(target < 60 s: {'met' if r['cold_decision_max_s'] < 60 else 'NOT met'})")
    save_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
