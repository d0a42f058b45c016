"""The scale-out profile's costs, measured in one run against the embedded profile (issue 17).

1. **Audit overhead per materialisation**, cluster vs embedded: ``audit_overhead.py``'s paired
   measurement (a plain Dagster asset vs the same transform as a ``@component``, alternating)
   run twice - once embedded (local Spark, a lakehouse folder, the SQLite journal, MLflow on
   SQLite) and once on the local cluster (Spark standalone, s3a:// on SeaweedFS, the journal in
   PostgreSQL, the MLflow server) - each in its own process, one after the other.
2. **Audit throughput with 1, 4 and 8 concurrent writers**: N processes each record R runs the
   way a materialisation does (an open marker, then the final record that closes it, one
   durable journal transaction each), copying a real record made in part 1; then one flush
   writes them to the Delta audit table (delta-rs on the object store). Records/s durable in
   the journal, records/s into Delta, and bytes per record in the journal and in Delta.

Needs a running cluster: ``tracelake cluster up`` (its environment is read from
``$TRACELAKE_CLUSTER_DIR/cluster.env``, default ``.cluster/``).

Run:  .venv/bin/python benchmarks/cluster_overhead.py [--n 20] [--records 200] [--writers 1,4,8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import pickle
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import pct, save_results

REPO = Path(__file__).resolve().parent.parent


def cluster_env() -> dict[str, str]:
    directory = Path(os.environ.get("TRACELAKE_CLUSTER_DIR") or REPO / ".cluster")
    path = directory / "cluster.env"
    if not path.exists():
        raise SystemExit(f"no {path}: start the cluster first (tracelake cluster up)")
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value.strip("'")
    return env


def profile_env(profile: str, home: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACELAKE_", "MLFLOW_", "DAGSTER_"))}
    if profile == "cluster":
        return {**base, **cluster_env(), "TRACELAKE_HOME": home}
    return {**base, "TRACELAKE_HOME": home, "TRACELAKE_SPARK_MASTER": "local[2]", "TRACELAKE_SPARK_DRIVER_MEMORY": "1g"}


# -- 1. overhead per materialisation ----------------------------------------------------------------
def overhead_child(n: int, home: str, out: str) -> None:
    """In the profile's own process: audit_overhead's paired measurement, and one record kept."""
    from audit_overhead import measure, summarise

    from tracelake.lineage import open_lakehouse

    result = summarise(n, measure(n, home))
    Path(out + ".template").write_bytes(pickle.dumps(_record_of(open_lakehouse(home), "audited_output")))
    Path(out).write_text(json.dumps(result, default=str))


def _record_of(lake, component: str) -> dict:
    """The newest record of ``component`` as plain Python values (what the journal is given)."""
    from tracelake.lineage.record.audit_tables import COMPONENT_RUNS

    rows = [r for r in lake.store.read_arrow(COMPONENT_RUNS).to_pylist() if r["component"] == component]
    return rows[-1]


def run_overhead(profile: str, n: int, work: Path) -> dict:
    home = cluster_env()["TRACELAKE_HOME"] + f"-bench-{uuid.uuid4().hex[:6]}" if profile == "cluster" \
        else str(work / "embedded")
    out = work / f"overhead-{profile}.json"
    cmd = [sys.executable, __file__, "--child-overhead", str(n), "--home", home, "--out", str(out)]
    t = time.monotonic()
    proc = subprocess.run(cmd, env=profile_env(profile, home), text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{profile} overhead run failed:\n{proc.stderr[-3000:]}")
    print(proc.stdout.strip())
    return {**json.loads(out.read_text()), "home": home, "process_seconds": time.monotonic() - t,
            "template": pickle.loads(Path(f"{out}.template").read_bytes())}


# -- 2. throughput with N writers -------------------------------------------------------------------
def _writer(home: str, records: int, template: dict, barrier, queue) -> None:
    from tracelake.lineage import open_lakehouse
    from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
    from tracelake.lineage.record.runid import new_run_id

    lake = open_lakehouse(home)
    row = {k: v for k, v in template.items() if k in COMPONENT_RUNS.schema.names
           and k not in ("journal_id", "chain_seq", "prev_hash", "record_hash", "recorded_at")}
    barrier.wait()
    latencies, t0 = [], time.perf_counter()
    for _ in range(records):
        run_id = new_run_id()
        t = time.perf_counter()
        lake.journal.open_run(run_id, {**row, "run_id": run_id, "status": "started"})
        lake.journal.append(COMPONENT_RUNS, run_id, {**row, "run_id": run_id}, close_run=run_id)
        latencies.append((time.perf_counter() - t) * 1000)
    queue.put({"seconds": time.perf_counter() - t0, "latencies_ms": latencies})


def throughput(profile: str, writers: int, records: int, template: dict, work: Path) -> dict:
    home = (cluster_env()["TRACELAKE_HOME"] + f"-tput-{uuid.uuid4().hex[:6]}") if profile == "cluster" \
        else str(work / f"tput-{writers}-{uuid.uuid4().hex[:6]}")
    saved, env = dict(os.environ), profile_env(profile, home)
    os.environ.clear()
    os.environ.update(env)
    try:
        ctx = mp.get_context("spawn")
        barrier, queue = ctx.Barrier(writers + 1), ctx.Queue()
        procs = [ctx.Process(target=_writer, args=(home, records, template, barrier, queue)) for _ in range(writers)]
        for p in procs:
            p.start()
        barrier.wait()
        t0 = time.perf_counter()
        results = [queue.get(timeout=3600) for _ in procs]
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
        return {"writers": writers, "records": writers * records, "wall_s": wall,
                "journal_records_per_s": writers * records / wall,
                "latency_ms": [x for r in results for x in r["latencies_ms"]], **_flush(home)}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _flush(home: str) -> dict:
    """Journal -> Delta (one batched commit), then the bytes a record takes in each place."""
    from tracelake.lineage.lakehouse import forget_lakehouse, open_lakehouse
    from tracelake.lineage.record.audit_tables import COMPONENT_RUNS

    forget_lakehouse(home)
    lake = open_lakehouse(home)
    pending = lake.journal.pending(COMPONENT_RUNS)
    from tracelake.lineage.record.chain import encode_payload

    journal_bytes = sum(len(encode_payload(e.row)) for e in pending) / max(len(pending), 1)
    t = time.perf_counter()
    written = lake.store.flush().get("component_runs", 0)
    flush_s = time.perf_counter() - t
    lake.store.compact(COMPONENT_RUNS)
    import pyarrow as pa
    from deltalake import DeltaTable

    dt = DeltaTable(lake.store.path(COMPONENT_RUNS))
    size = sum(pa.table(dt.get_add_actions(flatten=True)).column("size_bytes").to_pylist())
    return {"flushed": written, "flush_s": flush_s, "delta_records_per_s": written / flush_s if flush_s else None,
            "journal_bytes_per_record": journal_bytes, "delta_bytes_per_record": size / max(written, 1)}


def history_template() -> dict:
    """A cleaned_trips record of the reference pipeline's simulated history (made by the recorder)."""
    from history import ensure_history

    from tracelake.lineage.lakehouse import open_lakehouse

    home, _ = ensure_history(trips_per_day=200, days=60)
    return _record_of(open_lakehouse(home), "cleaned_trips")


def report(over: dict[str, dict], tput: list[dict]) -> None:
    print("\nAudit overhead per materialisation, same transform, embedded vs cluster profile (median, ms):")
    for profile, r in over.items():
        crit, total = r["figures"]["added, critical path wall"], r["figures"]["added, total (wall + bg CPU)"]
        print(f"  {profile:<9} added critical path p50 {crit['p50']:7.1f}  "
              f"added total p50 {total['p50']:7.1f}  "
              f"plain asset wall p50 {pct(r['samples']['plain']['wall'], .5):7.1f}  "
              f"@component wall p50 {pct(r['samples']['audited']['wall'], .5):7.1f}")
    print("\nAudit throughput (each record: open marker + closing final record, durable on return):")
    for r in tput:
        print(f"  {r['profile']:<9} {r['writers']} writer(s) x {r['records'] // r['writers']}: "
              f"{r['journal_records_per_s']:7.1f} runs/s into the journal (p50 {pct(r['latency_ms'], .5):5.1f} ms, "
              f"p95 {pct(r['latency_ms'], .95):5.1f} ms per run); flush {r['flushed']} -> Delta in "
              f"{r['flush_s']:.2f} s ({r['delta_records_per_s'] or 0:.0f}/s); "
              f"{r['journal_bytes_per_record']:.0f} B/record journaled, {r['delta_bytes_per_record']:.0f} B in Delta")
    print(f"  load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(wall times include waiting for a core)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="pairs of materialisations per profile")
    parser.add_argument("--records", type=int, default=200, help="runs recorded by each writer")
    parser.add_argument("--writers", default="1,4,8")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "cluster_overhead.json"))
    parser.add_argument("--skip-overhead", action="store_true",
                        help="throughput only, copying a record of benchmarks/history.py's reference history")
    parser.add_argument("--child-overhead", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_overhead:
        overhead_child(args.child_overhead, args.home, args.out)
        return 0
    work = Path(tempfile.mkdtemp(prefix="tracelake-cluster-bench-"))
    load = os.getloadavg()
    over = {} if args.skip_overhead else {p: run_overhead(p, args.n, work) for p in ("embedded", "cluster")}
    template = over["cluster"]["template"] if over else history_template()
    tput = [{"profile": p, **throughput(p, w, args.records, template, work)}
            for w in (int(x) for x in args.writers.split(",")) for p in ("embedded", "cluster")]
    report(over, tput)
    for r in over.values():
        r.pop("template", None)
    save_results(args.out, {"loadavg_start": load, "loadavg_end": os.getloadavg(), "overhead": over,
                            "throughput": tput})
    return 0


if __name__ == "__main__":
    sys.exit(main())
