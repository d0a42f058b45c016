"""Old-version reads: version 1 versus the latest of a table with >= 1,000 versions (issue 14).

The table is built with delta-rs: ``--versions`` commits that each *replace* the table with
``--rows`` new rows, so every version holds the same number of rows in one file of the same size
and the ratios measure finding and reading an old version, not data volume. Checkpoints every
10 commits (Spark's default) and the 7-year retention properties, as every Tracelake table.

Readers: Spark ``versionAsOf`` (what ``VERSION AS OF`` does), Tracelake's pinned read
(``read_version``: delta-rs lists the version's files, Spark reads them) and delta-rs to Arrow.

* cold - a new process per read, after the page cache of the table's files is dropped:
  ``echo 1 > /proc/sys/vm/drop_caches`` where the machine allows it, else
  ``posix_fadvise(DONTNEED)`` on every file of the table (after an fsync, so no page is dirty);
  which one was used is printed. In that process the session starts and reads a scratch table
  first (printed as start-up: JVM, Delta's classes, the first job), then reads the version.
  Only the lakehouse's files are dropped; the JVM's and Python's own files stay cached.
* warm - one process, one session: each version read once to warm, then ``--repeat`` reads
  of version 1 and the latest, alternating (the session holds Delta's cached snapshots).

Run:  .venv/bin/python benchmarks/old_version_reads.py [--versions 1000] [--rows 10000] [--repeat 5]
Target: reading version 1 costs <= 2x reading the latest, cold and warm, for every reader.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import save_results

os.environ.setdefault("TRACELAKE_SPARK_MASTER", "local[2]")
READERS = ("spark_version_as_of", "tracelake_pinned", "delta_rs")
TARGET = 2.0


def build(path: str, versions: int, rows: int) -> float:
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    config = {"delta.logRetentionDuration": "interval 2555 days",
              "delta.deletedFileRetentionDuration": "interval 2555 days", "delta.checkpointInterval": "10"}
    t = time.time()
    for i in range(versions):
        rng = np.random.default_rng(i)
        table = pa.table({"v": np.full(rows, i, dtype=np.int64), "x": rng.normal(size=rows)})
        write_deltalake(path, table, mode="overwrite", configuration=config if i == 0 else None)
    return time.time() - t


def drop_cache(path: str) -> str:
    """Drops the page cache of every file under ``path``; returns the method used."""
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            os.sync()
            f.write("1\n")
        return "drop_caches"
    except OSError:
        pass
    for root, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return "posix_fadvise(DONTNEED) per file"


def _spark(home: str):
    from tracelake.lineage import get_spark, load_settings

    return get_spark(load_settings(home=home))   # the product's settings (4g driver)


def read(reader: str, spark, path: str, version: int) -> float:
    t = time.perf_counter()
    if reader == "spark_version_as_of":
        spark.read.format("delta").option("versionAsOf", version).load(path).count()
    elif reader == "tracelake_pinned":
        from tracelake.lineage.record.tables import read_version

        read_version(spark, path, version).count()
    else:
        from deltalake import DeltaTable

        DeltaTable(path, version=version).to_pyarrow_table()
    return time.perf_counter() - t


def child(reader: str, path: str, scratch: str, version: int, home: str) -> dict:
    """One cold read in a fresh process: start-up (with a scratch-table read) apart from the read."""
    t = time.perf_counter()
    spark = None if reader == "delta_rs" else _spark(home)
    read(reader, spark, scratch, 0)
    startup = time.perf_counter() - t
    return {"startup_s": startup, "read_s": read(reader, spark, path, version)}


def cold(args, path: str, scratch: str, latest: int, home: str) -> tuple[dict, str]:
    out: dict = {r: {"v1": [], "latest": [], "startup": []} for r in READERS}
    method = ""
    for _ in range(args.cold_repeat):
        for reader in READERS:
            for label, version in (("v1", 1), ("latest", latest)):
                method = drop_cache(path)
                cmd = [sys.executable, __file__, "--child", reader, "--path", path, "--scratch", scratch,
                       "--version", str(version), "--home", home]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if proc.returncode != 0 or not line:
                    raise RuntimeError(f"cold {reader} read failed:\n{proc.stderr[-1500:]}")
                r = json.loads(line[0][7:])
                out[reader][label].append(r["read_s"])
                out[reader]["startup"].append(r["startup_s"])
    return out, method


def warm(args, path: str, scratch: str, latest: int, home: str) -> tuple[dict, float]:
    t = time.perf_counter()
    spark = _spark(home)
    for reader in READERS:
        read(reader, spark, scratch, 0)
    startup = time.perf_counter() - t
    out: dict = {}
    for reader in READERS:
        read(reader, spark, path, latest)
        read(reader, spark, path, 1)
        old, new = [], []
        for _ in range(args.repeat):
            old.append(read(reader, spark, path, 1))
            new.append(read(reader, spark, path, latest))
        out[reader] = {"v1": old, "latest": new}
    return out, startup


def summarise(kind: str, res: dict) -> dict:
    notes = {"spark_version_as_of": "Spark versionAsOf (VERSION AS OF)",
             "tracelake_pinned": "read_version: delta-rs file list + Spark Parquet", "delta_rs": "delta-rs to Arrow"}
    out = {}
    for reader in READERS:
        v1, new = statistics.median(res[reader]["v1"]), statistics.median(res[reader]["latest"])
        ratio = v1 / new
        out[reader] = {"v1_p50_s": v1, "latest_p50_s": new, "ratio": ratio, "met": ratio <= TARGET,
                       "samples": res[reader]}
        extra = ""
        if res[reader].get("startup"):
            extra = f"   start-up p50 {statistics.median(res[reader]['startup']):5.1f} s"
        print(f"  {kind:4s} {reader:20s} v1 {v1 * 1000:8.1f} ms   latest (baseline) {new * 1000:8.1f} ms   "
              f"ratio {ratio:5.2f}x  target <= {TARGET:.0f}x: {'met' if ratio <= TARGET else 'NOT met'}{extra}"
              f"   {notes[reader]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=10_000, help="rows of every version")
    parser.add_argument("--repeat", type=int, default=5, help="warm reads per version and reader")
    parser.add_argument("--cold-repeat", type=int, default=3, help="cold processes per version and reader")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "old_version_reads.json"))
    parser.add_argument("--child", choices=READERS, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--version", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.path, args.scratch, args.version, args.home)))
        return 0

    from deltalake import DeltaTable

    home = tempfile.mkdtemp(prefix="tracelake-versions-")
    path, scratch = f"{home}/tables/many_versions", f"{home}/tables/scratch"
    build_s = build(path, args.versions, args.rows)
    build(scratch, 1, 10)
    latest = DeltaTable(path).version()
    checkpoints = len(list(Path(path, "_delta_log").glob("*.checkpoint.parquet")))
    sizes = {v: DeltaTable(path, version=v).to_pyarrow_dataset().count_rows() for v in (1, latest)}
    print(f"Old-version reads: {latest + 1} versions ({checkpoints} checkpoints), every version {args.rows:,} rows "
          f"(v1 {sizes[1]:,}, latest {sizes[latest]:,}), built in {build_s:.0f} s")
    warm_res, warm_start = warm(args, path, scratch, latest, home)
    cold_res, method = cold(args, path, scratch, latest, home)
    print(f"  warm: one session (start-up {warm_start:.1f} s, not counted); cold: a new process per read, page "
          f"cache dropped with {method}")
    result = {"versions": latest + 1, "checkpoints": checkpoints, "rows_per_version": args.rows,
              "build_seconds": build_s, "cache_drop": method, "warm_startup_s": warm_start,
              "warm": summarise("warm", warm_res), "cold": summarise("cold", cold_res)}
    save_results(args.out, result)
    return 0


if __name__ == "__main__":
    # A cold child reads with delta-rs + pyarrow and exits at once, as a `tracelake` command does:
    # end it the way the command ends (jobs/process_exit.py), or 1 in ~10 aborts after its answer.
    from tracelake.jobs.process_exit import exit_after_handlers

    exit_after_handlers(main)
