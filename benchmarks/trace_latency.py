"""Trace and impact latency on three simulated years of realistic history (issue 14).

The history (history.py, cached under benchmarks/results/history/) has one Delta commit per run
and ~1,100 versions per daily table, each record pinning the version its run really read, data
at the recorded size (2,000 trips a day) and real content digests. Measured here:

- **warm**: the same kind of question asked repeatedly in one process (a notebook, a service)
  with the audit index already built; the first (warm-up) query is timed but excluded;
- **cold**: a new ``tracelake trace ... --json`` / ``tracelake impact ... --json`` process, with
  the page cache of the lakehouse dropped first where the machine allows it (``drop_caches``,
  else ``posix_fadvise(DONTNEED)`` on every file under the lakehouse - the method used is
  printed);
- **start-up** (printed beside the cold figure, not subtracted): ``tracelake trace --help``, the
  interpreter and the CLI's imports without an answer; and ``tracelake runs --limit 1``, the
  floor of any answer read from the audit store.

Each figure is printed with p50 and p95 and its target. Targets: trace and impact p50 <= 200 ms
warm and <= 3 s cold (a whole ``tracelake trace ... --json`` process). The machine is shared, so
the load average is printed too.

Run:  .venv/bin/python benchmarks/trace_latency.py [--cold 7] [--warm 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import figure, pct, save_results

WARM_TARGET_S = 0.2
COLD_TARGET_S = 3.0


def drop_page_cache(root: str) -> str:
    """Evict the lakehouse's files from the page cache; returns how it was done."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("1\n")
        return "echo 1 > /proc/sys/vm/drop_caches"
    except OSError:
        pass
    files = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                files += 1
            finally:
                os.close(fd)
    return f"posix_fadvise(POSIX_FADV_DONTNEED) on {files} files under the lakehouse (drop_caches not permitted)"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time_cmd(cmd: list[str], env: dict[str, str], home: str | None = None, cpu: list[float] | None = None) -> float:
    """Wall seconds of one process (after dropping the page cache of ``home``); its CPU seconds
    (user + system, the kernel's accounting of waited-for children) are appended to ``cpu``."""
    if home is not None:
        drop_page_cache(home)
    before = _children_cpu()
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()[-600:]}")
    if cpu is not None:
        cpu.append(_children_cpu() - before)
    return elapsed


def _questions(runs, n: int) -> tuple[list[str], list[str]]:
    """``n`` one-hour prediction slices and ``n`` daily ETL runs, spread over the three years."""
    hours = sorted(runs.loc[runs["component"] == "tip_predictions", "partition_key"])
    etl = runs[(runs["component"] == "cleaned_trips") & (runs["status"] == "succeeded")].sort_values("partition_key")
    step_h, step_d = len(hours) // (n + 1), len(etl) // (n + 1)
    slices = [f"_tl_partition = '{hours[(i + 1) * step_h]}'" for i in range(n)]
    return slices, [etl["run_id"].iloc[(i + 1) * step_d] for i in range(n)]


def _warm(lake, slices: list[str], etl_runs: list[str]) -> dict:
    """Repeated questions in one process; the first of each kind is the warm-up, excluded.
    Wall and CPU (``process_time``) seconds per question."""
    from tracelake.lineage.query.impact import impact
    from tracelake.lineage.query.trace import LineageWalker, trace

    t = time.perf_counter()
    walker = LineageWalker(lake)
    out: dict = {"index_build_s": time.perf_counter() - t, "trace_nodes": [], "impact_runs": []}
    for kind, targets in (("trace", slices), ("impact", etl_runs)):
        wall, cpu = out.setdefault(f"{kind}_wall", []), out.setdefault(f"{kind}_cpu", [])
        for i, target in enumerate(targets):
            t, c = time.perf_counter(), time.process_time()
            if kind == "trace":
                size = len(trace(lake, "tip_predictions", target, walker=walker).nodes)
            else:
                size = len(impact(lake, target, walker=walker).affected_runs())
            elapsed, used = time.perf_counter() - t, time.process_time() - c
            if i == 0:
                out[f"{kind}_warmup_s"] = elapsed
                continue
            wall.append(elapsed)
            cpu.append(used)
            out["trace_nodes" if kind == "trace" else "impact_runs"].append(size)
    return out


def _cold(home: str, slices: list[str], etl_runs: list[str], decisions: int) -> dict:
    """New processes, each after dropping the lakehouse's page cache: wall and CPU seconds."""
    env = {**os.environ, "TRACELAKE_HOME": home}
    cli = [str(Path(sys.executable).with_name("tracelake"))]
    out: dict = {"method": drop_page_cache(home)}
    questions = {
        "startup": [[*cli, "trace", "--help"]] * 3,
        "runs_floor": [[*cli, "runs", "--limit", "1", "--json"]] * 3,
        "trace": [[*cli, "trace", "tip_predictions", "--where", s, "--json"] for s in slices],
        "impact": [[*cli, "impact", r, "--json"] for r in etl_runs],
        "decision": [[*cli, "report", "decision", "tip_predictions", "--where", s, "--json"]
                     for s in slices[:decisions]],
    }
    for kind, commands in questions.items():
        cpu: list[float] = []
        out[f"{kind}_wall"] = [_time_cmd(c, env, None if kind == "startup" else home, cpu) for c in commands]
        out[f"{kind}_cpu"] = cpu
    return out


def _report(gen: dict, cold: dict, warm: dict, result: dict) -> None:
    print(f"\nTrace/impact latency, {gen['first_day']}..{gen['last_day']} ({gen['runs']} runs); load average "
          f"{result['loadavg_start'][0]:.1f} at the start, {result['loadavg_end'][0]:.1f} at the end, "
          f"{os.cpu_count()} cores (shared: wall times include waiting for a core; CPU seconds do not)")
    print(f"  cold = new process after dropping the lakehouse's page cache: {cold['method']}")
    print(f"  start-up (`tracelake trace --help`, no answer) p50 {pct(cold['startup_wall'], .5):.2f} s wall, "
          f"{pct(cold['startup_cpu'], .5):.2f} s CPU; `tracelake runs --limit 1` p50 "
          f"{pct(cold['runs_floor_wall'], .5):.2f} s; "
          f"audit index build in-process {warm['index_build_s']:.2f} s")
    print(f"  trace = one hour of predictions ({pct(warm['trace_nodes'], .5):.0f} nodes), "
          f"impact = one daily ETL run ({pct(warm['impact_runs'], .5):.0f} downstream runs)")
    lines = []
    for kind in ("trace", "impact"):
        lines.append(figure(f"{kind} warm", warm[f"{kind}_wall"], WARM_TARGET_S, result))
        lines.append(figure(f"{kind} warm CPU", warm[f"{kind}_cpu"], WARM_TARGET_S, result))
        lines.append(figure(f"{kind} cold (shell)", cold[f"{kind}_wall"], COLD_TARGET_S, result))
        lines.append(figure(f"{kind} cold (shell) CPU", cold[f"{kind}_cpu"], COLD_TARGET_S, result))
    if cold["decision_wall"]:
        lines.append(figure("report decision cold", cold["decision_wall"], 60.0, result))
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--trips-per-day", type=int, default=2000)
    parser.add_argument("--days", type=int, help="a shorter history (smoke tests); default: --years")
    parser.add_argument("--cold", type=int, default=7, help="cold processes per question kind")
    parser.add_argument("--warm", type=int, default=20, help="warm questions per kind (+1 warm-up, excluded)")
    parser.add_argument("--decision", type=int, default=3, help="time `tracelake report decision` cold N times (0: skip)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "trace_latency.json"))
    args = parser.parse_args()

    from history import ensure_history

    from tracelake.lineage import open_lakehouse
    from tracelake.lineage.query.graph import AuditIndex

    load_start = os.getloadavg()
    home, gen = ensure_history(args.years, args.trips_per_day, days=args.days)
    print(f"history: {home}\n  {gen['runs']} runs ({gen['by_component']}), generated in {gen['seconds']} s; "
          f"records carry added files: {gen.get('records_carry_added_files')}", flush=True)
    lake = open_lakehouse(home)
    slices, etl_runs = _questions(AuditIndex(lake).runs, max(args.cold, args.warm + 1))
    cold = _cold(home, slices[:args.cold], etl_runs[:args.cold], args.decision)
    warm = _warm(lake, slices[:args.warm + 1], etl_runs[:args.warm + 1])
    result = {"history": {"home": home, **gen}, "cache_drop": cold["method"], "loadavg_start": load_start,
              "loadavg_end": os.getloadavg(), "cpu_count": os.cpu_count(),
              "warmup_s": {"trace": warm["trace_warmup_s"], "impact": warm["impact_warmup_s"]},
              "index_build_s": warm["index_build_s"], "cold": cold, "warm": warm}
    _report(gen, cold, warm, result)
    save_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
