"""Old-version reads: version 1 versus the latest of a table with >= 1,000 versions (issue: lineage).

Builds a Delta table of 1,000 commits (delta-rs appends, checkpoint every 10 commits like
Spark's default, the 7-year retention properties), then reads version 1 and the latest version
with Spark (`versionAsOf`) and with delta-rs, several times each, in one run.

Run:  .venv/bin/python benchmarks/old_version_reads.py [--versions 1000]
Target: reading version 1 costs <= 2x reading the latest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import save_results

os.environ.setdefault("TRACELAKE_SPARK_MASTER", "local[2]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "old_version_reads.json"))
    args = parser.parse_args()

    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from tracelake.lineage import get_spark, load_settings

    home = tempfile.mkdtemp(prefix="tracelake-versions-")
    path = f"{home}/many_versions"
    config = {"delta.logRetentionDuration": "interval 2555 days", "delta.deletedFileRetentionDuration": "interval 2555 days",
              "delta.checkpointInterval": "10"}
    t = time.time()
    for i in range(args.versions):
        write_deltalake(path, pa.table({"v": [i] * 10, "x": [float(i)] * 10}), mode="append",
                        configuration=config if i == 0 else None)
    build_s = time.time() - t
    latest = DeltaTable(path).version()
    checkpoints = len(list(Path(path, "_delta_log").glob("*.checkpoint.parquet")))

    spark = get_spark(load_settings(home=home))

    delta_log_cls = spark._jvm.org.apache.spark.sql.delta.DeltaLog

    def spark_cold(version: int) -> float:
        # A first read, as an auditor's query in a new session: no cached table state.
        delta_log_cls.clearCache()
        t0 = time.perf_counter()
        spark.read.format("delta").option("versionAsOf", version).load(path).count()
        return time.perf_counter() - t0

    def spark_warm(version: int) -> float:
        # The session already holds the latest snapshot (it just read or wrote the table).
        t0 = time.perf_counter()
        spark.read.format("delta").option("versionAsOf", version).load(path).count()
        return time.perf_counter() - t0

    from tracelake.lineage.record.tables import read_version

    def pinned(version: int) -> float:
        # Tracelake's pinned read: delta-rs lists the version's files, Spark reads them.
        t0 = time.perf_counter()
        read_version(spark, path, version).count()
        return time.perf_counter() - t0

    def rs_read(version: int) -> float:
        t0 = time.perf_counter()
        DeltaTable(path, version=version).to_pyarrow_table()
        return time.perf_counter() - t0

    readers = (("spark_cold", spark_cold), ("spark_warm", spark_warm), ("tracelake_pinned", pinned), ("delta_rs", rs_read))
    for _, fn in readers:  # warm-up: JVM, first jobs
        fn(latest)
        fn(1)
    res = {}
    for name, fn in readers:
        old, new = [], []
        for _ in range(args.repeat):
            old.append(fn(1))
            new.append(fn(latest))
        res[name] = {"v1_p50_s": statistics.median(old), "latest_p50_s": statistics.median(new),
                     "ratio": statistics.median(old) / statistics.median(new)}
    result = {"versions": latest + 1, "checkpoints": checkpoints, "build_seconds": build_s, **res}
    print(f"\nOld-version reads: a table of {latest + 1} versions ({checkpoints} checkpoints), built in {build_s:.0f} s")
    notes = {"spark_cold": "Spark VERSION AS OF, first read in the session (target <= 2x)",
             "spark_warm": "Spark, latest snapshot already cached by the session",
             "tracelake_pinned": "tracelake read_version: delta-rs file list + Spark Parquet",
             "delta_rs": "delta-rs to pyarrow"}
    for name, _ in readers:
        r = res[name]
        print(f"  {name:16s} version 1 p50 {r['v1_p50_s'] * 1000:7.1f} ms   latest p50 {r['latest_p50_s'] * 1000:7.1f} ms   "
              f"ratio {r['ratio']:.2f}x   {notes[name]}")
    save_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
