"""Cost of drift detection (issue: drift).

A table of ``--rows`` rows (10 numeric columns n0..n9 - normal, lognormal and uniform - and 2
categorical columns, c0 with 12 values and c1 with 4) is compared with a reference of the same
size. In the current data n1, n2 and n3 are shifted by 0.05, 0.15 and 0.25 of their standard
deviation; nothing else changes, so the expected verdicts are n2 and n3 drifted (normed Wasserstein
0.15 and 0.25 >= 0.1) and everything else not (n1's 0.05 is below the threshold). Both sides are
Parquet folders of ten files each (the current side's files are its ten "days").

Paths, each in its own process, all measured the same way - the parent polls /proc every 0.2 s
and keeps the largest sum of RSS over the child's whole process tree (Spark: the Python driver,
the JVM it starts and the JVM's Python workers), so "peak MB" always includes the JVM:

* exact     - the ground truth: scipy's Wasserstein distance on the full sorted columns (normed
              by the reference's population std, as Evidently does) and the Jensen-Shannon
              distance of the full category frequencies. Verdicts: normed W >= 0.1, JS >= 0.1.
* numpy     - the single-process lower bound: one streaming pass with pyarrow + NumPy that
              builds the same histograms (same ``ProfileSpec`` bins) for both sides, then
              ``compare_profiles``. Memory is bounded by the batch size.
* spark     - Tracelake's path: ``profile_spark`` on both sides with Spark local[2] (driver
              memory ``--driver-memory``), then ``compare_profiles``. The wall time excludes the
              session start, which is reported separately. Then the incremental case: profile
              one new day (a tenth of the current data) alone, profile the other nine days, merge
              them and check the sum equals the full profile exactly, and merge a year of stored
              daily profiles (365 x 12) to show a daily run costs the new day, not the history.
* evidently - ``Report([DataDriftPreset()])`` on pandas frames of the first N rows of each side,
              for growing N (100k, 300k, 1M, 3M, ... up to --rows); each size has a hard timeout
              (--evidently-timeout, counted once its imports are done), and a size whose predicted time (extrapolated from the
              previous sizes; Evidently grows ~17x per 10x rows) is well over it is not started.
              Where it stops is reported, and Spark is compared both with Evidently's largest
              completed size and with Evidently extrapolated to the full size (labelled).

Every child is also killed if its tree exceeds --mem-limit-mb (default: 80% of the memory
available at start), so an Evidently run that cannot fit stops instead of swapping the machine.
The spec (bins and categories) is derived once from a 200k-row sample of the reference with
``derive_spec`` and shared by the numpy and spark paths, whose histograms must agree exactly.

Run:  .venv/bin/python benchmarks/drift_cost.py --rows 10000000
      (a quick check: --rows 300000 --evidently-timeout 120; --work DIR keeps and reuses the data)
Targets at 10M rows: the same verdicts as the exact statistics; >= 10x faster than Evidently on
pandas and <= 1/4 of its peak memory; within 3x of the NumPy bound with bounded memory; a daily
run's cost grows with the new day, not the history.
Results go to benchmarks/results/drift_cost.json (git-ignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import save_results

# name -> (distribution, a, b): normal(mean a, std b), lognormal(mu a, sigma b), uniform(a, b)
NUMERIC = {
    "n0": ("normal", 50.0, 10.0), "n1": ("lognormal", 3.0, 0.5), "n2": ("normal", 0.0, 1.0),
    "n3": ("uniform", 0.0, 100.0), "n4": ("lognormal", 1.0, 0.8), "n5": ("uniform", -5.0, 5.0),
    "n6": ("normal", 1000.0, 250.0), "n7": ("lognormal", 0.0, 0.3), "n8": ("uniform", 10.0, 20.0),
    "n9": ("normal", -3.0, 0.5),
}
SHIFTS = {"n1": 0.05, "n2": 0.15, "n3": 0.25}      # in units of the column's standard deviation
C0 = [f"k{i:02d}" for i in range(12)]
C0_P = [1 / (i + 1) for i in range(12)]
C1 = ["card", "cash", "app", "voucher"]
C1_P = [0.5, 0.3, 0.15, 0.05]
CATEGORICAL = ["c0", "c1"]
COLUMNS = [*NUMERIC, *CATEGORICAL]
FILES = 10                                          # per side; the current side's files are its days
THRESHOLD = 0.1                                     # normed Wasserstein (numeric), Jensen-Shannon (categorical)
SPEC_SAMPLE = 200_000
EVIDENTLY_GROWTH = 17.0                             # planning figure: time x17 per 10x rows
DATA_VERSION = 1
# Evidently's distance methods (drift when value >= threshold); every other method is a p-value
# test (drift when value < threshold).
EVIDENTLY_DISTANCES = ("wasserstein", "jensen-shannon", "hellinger", "kullback-leibler", "psi", "energy",
                       "mmd", "total-variation")


# -- data ---------------------------------------------------------------------------------------

def _std(kind: str, a: float, b: float) -> float:
    if kind == "normal":
        return b
    if kind == "lognormal":
        return math.sqrt((math.exp(b * b) - 1) * math.exp(2 * a + b * b))
    return (b - a) / math.sqrt(12)


def _chunk(rng, n: int, shifted: bool):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = {}
    for name, (kind, a, b) in NUMERIC.items():
        x = {"normal": rng.normal, "lognormal": rng.lognormal, "uniform": rng.uniform}[kind](a, b, n)
        if shifted and name in SHIFTS:
            x += SHIFTS[name] * _std(kind, a, b)
        cols[name] = x
    for name, values, p in (("c0", C0, C0_P), ("c1", C1, C1_P)):
        p = np.asarray(p) / np.sum(p)
        cols[name] = pc.take(pa.array(values), pa.array(rng.choice(len(values), n, p=p)))
    return pa.table(cols)


def make_data(work: Path, rows: int) -> dict:
    """Reference and current Parquet folders, FILES files each, written in chunks of <= 1M rows."""
    import numpy as np
    import pyarrow.parquet as pq

    meta_path = work / "meta.json"
    meta = {"rows": rows, "files": FILES, "version": DATA_VERSION}
    if meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        return {"reused": True, "seconds": 0.0}
    t = time.perf_counter()
    bounds = np.linspace(0, rows, FILES + 1).astype(int)
    for side, name, prefix in ((0, "reference", "part"), (1, "current", "day")):
        folder = work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i in range(FILES):
            rng = np.random.default_rng([side, i])
            n, writer = int(bounds[i + 1] - bounds[i]), None
            for start in range(0, n, 1_000_000):
                table = _chunk(rng, min(1_000_000, n - start), shifted=side == 1)
                if writer is None:
                    writer = pq.ParquetWriter(folder / f"{prefix}-{i:02d}.parquet", table.schema)
                writer.write_table(table)
            writer.close()
    meta_path.write_text(json.dumps(meta))
    return {"reused": False, "seconds": time.perf_counter() - t}


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*.parquet")) / 1e6


# -- measuring a process tree --------------------------------------------------------------------

def _status_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in kB, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = hwm = 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "driver"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    if cmd and cmd[0].endswith(b"java"):
        return "jvm"
    if any(b"pyspark" in part for part in cmd):
        return "workers"
    return "other"


class TreeMonitor(threading.Thread):
    """Samples the RSS of a process and all its descendants every ``interval`` seconds."""

    def __init__(self, root: int, interval: float = 0.2, limit_mb: float | None = None):
        super().__init__(daemon=True)
        self.root, self.interval, self.limit_kb = root, interval, (limit_mb or 0) * 1024
        self.samples: list[tuple[float, int, dict[str, int]]] = []   # (epoch, total kB, kB by role)
        self.hwm: dict[int, tuple[str, int]] = {}                      # pid -> (role, last VmHWM kB)
        self.over_limit = False
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> None:
        total, by_role = 0, {}
        for pid in _tree(self.root):
            kb = _status_kb(pid)
            if kb is None:
                continue
            role = _role(pid, self.root)    # not cached: spark-submit's shell execs into java
            total += kb[0]
            by_role[role] = by_role.get(role, 0) + kb[0]
            self.hwm[pid] = (role, max(kb[1], self.hwm.get(pid, ("", 0))[1]))
        self.samples.append((time.time(), total, by_role))
        if self.limit_kb and total > self.limit_kb:
            self.over_limit = True

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak(self, until: float | None = None) -> dict:
        samples = [s for s in self.samples if until is None or s[0] <= until + self.interval] or [(0, 0, {})]
        t, total, by_role = max(samples, key=lambda s: s[1])
        hwm: dict[str, int] = {}
        for role, kb in self.hwm.values():
            hwm[role] = hwm.get(role, 0) + kb
        return {"tree_mb": total / 1024, "at_peak_mb": {k: v / 1024 for k, v in by_role.items()},
                "sum_of_vmhwm_mb": {k: v / 1024 for k, v in hwm.items()}, "processes": len(self.hwm)}


def run_child(kind: str, work: Path, extra: list[str], *, timeout: float | None, limit_mb: float,
              tag: str = "") -> dict:
    """Runs this script as ``--child kind`` in its own session, measuring its whole tree."""
    tag = tag or kind
    result_path, log_path = work / f"result-{tag}.json", work / f"log-{tag}.txt"
    started = result_path.with_suffix(".started")
    result_path.unlink(missing_ok=True)
    started.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", kind, "--work", str(work), "--result", str(result_path), *extra]
    t = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        monitor = TreeMonitor(proc.pid, limit_mb=limit_mb)
        monitor.start()
        status = "ok"
        while proc.poll() is None:
            # the clock starts when the child says its imports are done (at most 120 s after launch)
            since = started.stat().st_mtime if started.exists() else min(t + 120, time.time())
            if timeout is not None and time.time() - since > timeout:
                status = "timeout"
            elif monitor.over_limit:
                status = "memory"
            if status != "ok":
                os.killpg(proc.pid, signal.SIGKILL)   # the child's own process group (JVM, workers)
                proc.wait()
                break
            time.sleep(0.1)
        monitor.stop()
    try:
        os.killpg(proc.pid, signal.SIGKILL)           # anything of that group left behind
    except ProcessLookupError:
        pass
    elapsed = time.time() - t
    out: dict = {"status": status, "process_s": elapsed}
    if status == "ok" and (proc.returncode != 0 or not result_path.exists()):
        out["status"] = "failed"
        out["log_tail"] = log_path.read_text()[-3000:]
    if result_path.exists():
        out.update(json.loads(result_path.read_text()))
    out["memory"] = monitor.peak(out.get("marks", {}).get("main_end"))
    out["memory_whole_run"] = monitor.peak()
    return out


# -- children -------------------------------------------------------------------------------------

def _load_spec(work: Path):
    from tracelake.monitors.drift.profiles import ProfileSpec

    return ProfileSpec.from_json((work / "spec.json").read_text())


def _verdicts(results) -> tuple[dict, dict]:
    verdicts = {r.column: r.drifted for r in results if r.slice_key == "all"}
    scores = {r.column: r.score for r in results if r.slice_key == "all"}
    return verdicts, scores


def _digest(profiles) -> dict:
    return {p.column: {"count": p.count, "nulls": p.nulls, "sum": p.sum,
                       "hist": None if p.hist is None else [int(x) for x in p.hist],
                       "categories": dict(sorted(p.categories.items())), "other": p.other}
            for p in profiles if p.slice_key == "all"}


def child_exact(work: Path) -> dict:
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from scipy import stats
    from scipy.spatial import distance

    t = time.perf_counter()
    ref, cur = ds.dataset(work / "reference", format="parquet"), ds.dataset(work / "current", format="parquet")
    scores, verdicts = {}, {}
    for name in NUMERIC:
        r = ref.to_table(columns=[name]).column(name).to_numpy()
        c = cur.to_table(columns=[name]).column(name).to_numpy()
        scores[name] = float(stats.wasserstein_distance(r, c) / max(float(np.std(r)), 0.001))
        del r, c
    for name in CATEGORICAL:
        counts = []
        for side in (ref, cur):
            vc = pc.value_counts(side.to_table(columns=[name]).column(name))
            counts.append(dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist())))
        keys = sorted(set(counts[0]) | set(counts[1]), key=str)
        p = np.array([counts[0].get(k, 0) for k in keys], float)
        q = np.array([counts[1].get(k, 0) for k in keys], float)
        scores[name] = float(distance.jensenshannon(p / p.sum(), q / q.sum()))
    verdicts = {k: v >= THRESHOLD for k, v in scores.items()}
    return {"seconds": time.perf_counter() - t, "verdicts": verdicts, "scores": scores}


def _numpy_profiles(path: Path, spec, batch_rows: int) -> list:
    """Histograms and moments of every column in one streaming pass, NumPy only."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from tracelake.monitors.drift.profiles import Profile

    profiles = {c.name: Profile(c.name, c.kind, None, hist=np.zeros(c.bins + 2, np.int64) if c.kind == "numeric" else None)
                for c in spec.columns}
    for batch in ds.dataset(path, format="parquet").to_batches(columns=[c.name for c in spec.columns],
                                                               batch_size=batch_rows):
        for col in spec.columns:
            prof, arr = profiles[col.name], batch.column(col.name)
            prof.nulls += arr.null_count
            if col.kind == "numeric":
                v = arr.to_numpy(zero_copy_only=False)
                v = v[~np.isnan(v)]
                width = (col.hi - col.lo) / col.bins      # the same arithmetic as profiles._bins
                idx = np.floor((v - col.lo) / width).astype(np.int64) + 1
                idx = np.clip(np.where(v >= col.hi, col.bins + 1, idx), 0, col.bins + 1)
                prof.hist += np.bincount(idx, minlength=col.bins + 2)
                prof.count += len(v)
                prof.sum += float(v.sum())
                prof.sum_sq += float(np.dot(v, v))
                if len(v):
                    prof.min, prof.max = min(prof.min, float(v.min())), max(prof.max, float(v.max()))
            else:
                vc = pc.value_counts(arr)
                for value, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                    if value is not None:
                        prof.categories[str(value)] = prof.categories.get(str(value), 0) + n
                        prof.count += n
    for col in spec.columns:                                # what profile_pandas keeps: known + top_k others
        prof = profiles[col.name]
        if col.kind == "categorical":
            extra = sorted(((k, v) for k, v in prof.categories.items() if k not in col.categories), key=lambda kv: -kv[1])
            prof.other = sum(v for _, v in extra[spec.top_k:])
            for k, _ in extra[spec.top_k:]:
                del prof.categories[k]
    return list(profiles.values())


def child_numpy(work: Path, batch_rows: int) -> dict:
    from tracelake.monitors.drift.statistics import DriftThresholds, compare_profiles

    spec = _load_spec(work)
    t = time.perf_counter()
    ref = _numpy_profiles(work / "reference", spec, batch_rows)
    t_ref = time.perf_counter() - t
    cur = _numpy_profiles(work / "current", spec, batch_rows)
    t_cur = time.perf_counter() - t - t_ref
    verdicts, scores = _verdicts(compare_profiles(ref, cur, spec, DriftThresholds()))
    return {"seconds": time.perf_counter() - t, "reference_s": t_ref, "current_s": t_cur, "verdicts": verdicts,
            "scores": scores, "profiles": {"reference": _digest(ref), "current": _digest(cur)}}


def child_spark(work: Path, driver_memory: str) -> dict:
    import numpy as np

    from tracelake.lineage import get_spark, load_settings
    from tracelake.monitors.drift.statistics import DriftThresholds, compare_profiles
    from tracelake.monitors.drift.profiles import merge, profile_spark

    spec = _load_spec(work)
    home = tempfile.mkdtemp(prefix="tracelake-drift-spark-")
    t = time.perf_counter()
    spark = get_spark(load_settings(home=home, spark_master="local[2]", spark_driver_memory=driver_memory))
    spark.range(10).count()       # session start is reported, not counted as drift cost
    session_s = time.perf_counter() - t

    def warm(batches):            # start both Python workers and import the profiler in them
        import tracelake.monitors.drift.profiles  # noqa: F401
        yield from batches

    t = time.perf_counter()
    spark.range(0, 2, numPartitions=2).mapInArrow(warm, "id long").collect()
    warmup_s = time.perf_counter() - t
    marks = {"main_start": time.time()}

    t = time.perf_counter()
    ref = profile_spark(spark.read.parquet(str(work / "reference")), spec)
    t_ref = time.perf_counter() - t
    cur = profile_spark(spark.read.parquet(str(work / "current")), spec)
    t_cur = time.perf_counter() - t - t_ref
    verdicts, scores = _verdicts(compare_profiles(ref, cur, spec, DriftThresholds()))
    seconds = time.perf_counter() - t
    marks["main_end"] = time.time()
    jvm_pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())
    jvm_hwm_mb = (_status_kb(jvm_pid) or (0, 0))[1] / 1024
    driver_hwm_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # Incremental: a new day is a tenth of the current data; the other nine are history.
    days = sorted(str(p) for p in (work / "current").glob("day-*.parquet"))
    t = time.perf_counter()
    day = profile_spark(spark.read.parquet(days[-1]), spec)
    t_day = time.perf_counter() - t
    day_verdicts, _ = _verdicts(compare_profiles(ref, day, spec))
    t = time.perf_counter()
    history = profile_spark(spark.read.parquet(*days[:-1]), spec)
    t_history = time.perf_counter() - t
    t = time.perf_counter()
    summed = merge(history + day)
    t_merge_two = time.perf_counter() - t
    full = {p.column: p for p in cur}
    exact = all(p.count == full[p.column].count and p.nulls == full[p.column].nulls
                and p.categories == full[p.column].categories and p.other == full[p.column].other
                and (p.hist is None or np.array_equal(p.hist, full[p.column].hist))
                and math.isclose(p.sum, full[p.column].sum, rel_tol=1e-9, abs_tol=1e-6) for p in summed)
    year = [dataclasses.replace(p, window_start=d * 86_400, hist=None if p.hist is None else p.hist.copy(),
                                categories=dict(p.categories)) for d in range(365) for p in day]
    t = time.perf_counter()
    cumulative = merge(year, window="all")
    t_year_merge = time.perf_counter() - t
    t = time.perf_counter()
    compare_profiles(ref, cumulative, spec)
    t_year_compare = time.perf_counter() - t
    spark.stop()
    shutil.rmtree(home, ignore_errors=True)
    return {"seconds": seconds, "session_s": session_s, "warmup_s": warmup_s, "reference_s": t_ref, "current_s": t_cur,
            "verdicts": verdicts, "scores": scores, "marks": marks, "jvm_vmhwm_mb": jvm_hwm_mb,
            "driver_vmhwm_mb": driver_hwm_mb, "profiles": {"reference": _digest(ref), "current": _digest(cur)},
            "incremental": {"day_s": t_day, "day_rows": sum(p.count + p.nulls for p in day if p.column == "n0"),
                            "history_s": t_history, "history_days": len(days) - 1, "full_current_s": t_cur,
                            "merge_day_into_history_ms": t_merge_two * 1000, "merged_equals_full": exact,
                            "year_profiles": len(year), "year_merge_ms": t_year_merge * 1000,
                            "year_compare_ms": t_year_compare * 1000, "day_verdicts": day_verdicts}}


def _evidently_drifted(method: str, value: float, threshold: float) -> bool:
    lowered = method.lower()
    if any(d in lowered for d in EVIDENTLY_DISTANCES):
        return bool(value >= threshold)
    return bool(value < threshold)    # a p-value test


def child_evidently(work: Path, rows: int) -> dict:
    import pyarrow.dataset as ds
    from evidently import Report
    from evidently.presets import DataDriftPreset

    _started()                    # the timeout counts from here, not from the imports
    t = time.perf_counter()
    frames = []
    for side in ("reference", "current"):
        dataset = ds.dataset(work / side, format="parquet")
        table = dataset.head(rows) if rows < dataset.count_rows() else dataset.to_table()
        frames.append(table.to_pandas())
    ref, cur = frames
    load_s = time.perf_counter() - t
    snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    run_s = time.perf_counter() - t - load_s
    verdicts, scores, methods = {}, {}, {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        name, value = config["column"], float(metric["value"])
        verdicts[name] = _evidently_drifted(config["method"], value, float(config["threshold"]))
        scores[name], methods[name] = value, config["method"]
    return {"seconds": time.perf_counter() - t, "load_s": load_s, "run_s": run_s, "rows": len(ref),
            "verdicts": verdicts, "scores": scores, "methods": methods}


_STARTED: Path | None = None


def _started() -> None:
    if _STARTED is not None:
        _STARTED.touch()


def _child(args) -> None:
    global _STARTED
    work = Path(args.work)
    _STARTED = Path(args.result).with_suffix(".started")
    if args.child == "exact":
        out = child_exact(work)
    elif args.child == "numpy":
        out = child_numpy(work, args.batch_rows)
    elif args.child == "spark":
        out = child_spark(work, args.driver_memory)
    else:
        out = child_evidently(work, args.n)
    Path(args.result).write_text(json.dumps(out))


# -- the parent ------------------------------------------------------------------------------------

def _mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 8192.0


def evidently_sizes(rows: int, given: str | None) -> list[int]:
    if given is not None:
        return sorted({min(int(float(s)), rows) for s in given.split(",") if s.strip()})
    ladder = [100_000, 300_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000, 100_000_000]
    return sorted({s for s in ladder if s < rows} | {rows})


def _fit(done: list[dict]) -> tuple[float, float | None]:
    """Time exponent (log-log slope of the last two sizes, else the planning figure) and memory
    MB per row (slope of the last two sizes, else None)."""
    if len(done) >= 2:
        a, b = done[-2], done[-1]
        ratio = b["rows"] / a["rows"]
        alpha = math.log(b["seconds"] / a["seconds"]) / math.log(ratio)
        per_row = (b["memory"]["tree_mb"] - a["memory"]["tree_mb"]) / (b["rows"] - a["rows"])
        return alpha, per_row
    return math.log10(EVIDENTLY_GROWTH), None


def run_evidently(work: Path, rows: int, sizes: list[int], timeout: float, limit_mb: float) -> dict:
    done, stop = [], None
    for n in sizes:
        if done:
            alpha, _ = _fit(done)
            predicted = done[-1]["seconds"] * (n / done[-1]["rows"]) ** alpha
            if predicted > 1.5 * timeout:
                stop = {"rows": n, "reason": f"not started: predicted {predicted:.0f} s > 1.5 x the {timeout:.0f} s timeout"}
                break
        print(f"  Evidently on {n:,} rows ...", flush=True)
        r = run_child("evidently", work, ["--n", str(n)], timeout=timeout, limit_mb=limit_mb, tag=f"evidently-{n}")
        if r["status"] != "ok":
            reason = {"timeout": f"killed after the {timeout:.0f} s timeout",
                      "memory": f"killed at the {limit_mb:.0f} MB memory limit"}.get(r["status"], "failed")
            stop = {"rows": n, "reason": reason, "log_tail": r.get("log_tail", "")[-800:]}
            break
        done.append(r)
        print(f"    {r['seconds']:.1f} s (load {r['load_s']:.1f} s + report {r['run_s']:.1f} s), "
              f"peak {r['memory']['tree_mb']:.0f} MB", flush=True)
    out = {"runs": done, "stopped": stop, "largest_completed": done[-1]["rows"] if done else 0}
    if done and done[-1]["rows"] < rows:
        alpha, per_row = _fit(done)
        last = done[-1]
        out["extrapolated"] = {"rows": rows, "exponent": alpha,
                               "seconds": last["seconds"] * (rows / last["rows"]) ** alpha,
                               "peak_mb": None if per_row is None else last["memory"]["tree_mb"] + per_row * (rows - last["rows"])}
    return out


def _mark(v) -> str:
    return "?" if v is None else ("D" if v else ".")


def _agree(verdicts: dict, exact: dict) -> int:
    return sum(verdicts.get(c) == exact[c] for c in COLUMNS)


def _check(ok: bool) -> str:
    return "✓" if ok else "✗"


def _profiles_match(a: dict, b: dict) -> bool:
    for side in ("reference", "current"):
        for col, pa_ in a[side].items():
            pb = b[side].get(col)
            if pb is None or any(pa_[k] != pb[k] for k in ("count", "nulls", "hist", "categories", "other")):
                return False
            if not math.isclose(pa_["sum"], pb["sum"], rel_tol=1e-9, abs_tol=1e-6):
                return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of each side (default 10M)")
    parser.add_argument("--evidently-timeout", type=float, default=600.0, help="seconds per Evidently size (after its imports)")
    parser.add_argument("--evidently-sizes", help="comma-separated row counts (default 100k,300k,1M,3M,... up to --rows)")
    parser.add_argument("--driver-memory", default="1g",
                        help="Spark driver heap; profiling streams Arrow batches, so 1g is plenty (default 1g)")
    parser.add_argument("--mem-limit-mb", type=float, default=None, help="kill a child whose tree exceeds this")
    parser.add_argument("--batch-rows", type=int, default=500_000, help="NumPy path batch size")
    parser.add_argument("--work", help="data folder, kept and reused across runs (default: a temporary folder, removed)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "drift_cost.json"))
    parser.add_argument("--child", choices=["exact", "numpy", "spark", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return 0

    import pyarrow.dataset as ds

    from tracelake.monitors.drift.profiles import derive_spec

    rows = args.rows
    limit_mb = args.mem_limit_mb or 0.8 * _mem_available_mb()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="tracelake-drift-"))
    work.mkdir(parents=True, exist_ok=True)
    gen = make_data(work, rows)
    print(f"{rows:,} rows x {len(COLUMNS)} columns per side "
          f"({'reused' if gen['reused'] else 'written in %.0f s' % gen['seconds']}; "
          f"{_dir_mb(work / 'reference') + _dir_mb(work / 'current'):.0f} MB Parquet in {work}); "
          f"shifts {', '.join(f'{k} +{v}σ' for k, v in SHIFTS.items())}; children killed above {limit_mb:.0f} MB")

    t = time.perf_counter()
    sample = ds.dataset(work / "reference", format="parquet").head(min(rows, SPEC_SAMPLE)).to_pandas()
    spec = derive_spec(sample, list(NUMERIC), CATEGORICAL)
    (work / "spec.json").write_text(spec.to_json())
    spec_s = time.perf_counter() - t
    del sample
    print(f"spec: {len(spec.columns)} columns, {spec.columns[0].bins} bins, derived from {min(rows, SPEC_SAMPLE):,} "
          f"reference rows in {spec_s:.1f} s (once; stored with the profiles)")

    results: dict = {}
    for kind, label, extra in (("exact", "exact full-data statistics", []),
                               ("numpy", "NumPy streaming pass (bound)", ["--batch-rows", str(args.batch_rows)]),
                               ("spark", "Spark profiles, local[2]", ["--driver-memory", args.driver_memory])):
        print(f"  {label} ...", flush=True)
        r = run_child(kind, work, extra, timeout=None, limit_mb=limit_mb)
        if r["status"] != "ok":
            print(f"{kind} {r['status']}:\n{r.get('log_tail', '')}")
            return 1
        results[kind] = r
        print(f"    {r['seconds']:.1f} s, peak {r['memory']['tree_mb']:.0f} MB", flush=True)
    ev = run_evidently(work, rows, evidently_sizes(rows, args.evidently_sizes), args.evidently_timeout, limit_mb)

    exact, numpy_, spark = results["exact"], results["numpy"], results["spark"]
    truth = exact["verdicts"]
    same_profiles = _profiles_match(numpy_["profiles"], spark["profiles"])
    print(f"\nDrift of {rows:,} rows against a {rows:,}-row reference "
          f"(D = drifted, . = not; verdicts: normed Wasserstein >= {THRESHOLD}, Jensen-Shannon >= {THRESHOLD})")
    print(f"  {'path':34s} {'rows':>11s} {'wall s':>8s} {'peak MB':>8s}  " + " ".join(f"{c:>2s}" for c in COLUMNS)
          + "  agree")
    table = [("exact (scipy, full sorted data)", exact, rows), ("NumPy pass, 1 process (bound)", numpy_, rows),
             ("Spark profiles, local[2]", spark, rows)]
    table += [("Evidently DataDriftPreset", r, r["rows"]) for r in ev["runs"]]
    for label, r, n in table:
        print(f"  {label:34s} {n:11,d} {r['seconds']:8.1f} {r['memory']['tree_mb']:8.0f}  "
              + " ".join(f"{_mark(r['verdicts'].get(c)):>2s}" for c in COLUMNS) + f"  {_agree(r['verdicts'], truth)}/12")
    if ev["stopped"]:
        print(f"  Evidently stopped at {ev['stopped']['rows']:,} rows: {ev['stopped']['reason']}")
    sm = spark["memory"]
    print(f"  Spark: start-up not counted: session {spark['session_s']:.1f} s, Python workers "
          f"{spark['warmup_s']:.1f} s; profile reference {spark['reference_s']:.1f} s, "
          f"current {spark['current_s']:.1f} s; peak tree {sm['tree_mb']:.0f} MB = "
          + " + ".join(f"{k} {v:.0f}" for k, v in sorted(sm['at_peak_mb'].items()) if v >= 1)
          + f" (VmHWM: JVM {spark['jvm_vmhwm_mb']:.0f} MB, Python driver {spark['driver_vmhwm_mb']:.0f} MB, "
          f"workers {sm['sum_of_vmhwm_mb'].get('workers', 0):.0f} MB summed over {sm['processes']} processes)")
    print(f"  NumPy and Spark histograms identical: {'yes' if same_profiles else 'NO'}")
    print("\n  scores (exact | NumPy profile | Spark profile | Evidently at its largest size)")
    last_ev = ev["runs"][-1] if ev["runs"] else None
    for c in COLUMNS:
        e = f"{last_ev['scores'].get(c, float('nan')):.4f}" if last_ev else "-"
        print(f"    {c:3s} {exact['scores'][c]:.4f} | {numpy_['scores'][c]:.4f} | {spark['scores'][c]:.4f} | {e}")

    # targets
    print(f"\nTargets at {rows:,} rows")
    checks = {}
    checks["same_verdicts_as_exact"] = spark["verdicts"] == truth
    print(f"  {_check(checks['same_verdicts_as_exact'])} Spark verdicts = exact full-data verdicts "
          f"({_agree(spark['verdicts'], truth)}/12)")
    comparisons = []
    if last_ev and last_ev["rows"] == rows:
        comparisons.append(("measured, same size", last_ev["seconds"], last_ev["memory"]["tree_mb"], rows))
    else:
        if last_ev:
            comparisons.append((f"Evidently at {last_ev['rows']:,} rows vs Spark at {rows:,} (conservative)",
                                last_ev["seconds"], last_ev["memory"]["tree_mb"], last_ev["rows"]))
        if "extrapolated" in ev:
            x = ev["extrapolated"]
            comparisons.append((f"Evidently extrapolated to {rows:,} rows (time ~ rows^{x['exponent']:.2f}, memory linear)",
                                x["seconds"], x["peak_mb"], rows))
    for label, ev_s, ev_mb, _ in comparisons:
        speed = ev_s / spark["seconds"]
        speed_total = ev_s / (spark["seconds"] + spark["session_s"] + spark["warmup_s"])
        key = "measured" if label.startswith("measured") else ("extrapolated" if "extrapolated" in label else "largest")
        checks[f"10x_faster_{key}"] = speed >= 10
        print(f"  {_check(speed >= 10)} >= 10x faster than Evidently [{label}]: {speed:.1f}x "
              f"({ev_s:.1f} s vs {spark['seconds']:.1f} s; {speed_total:.1f}x counting Spark's start-up)")
        if ev_mb is not None:
            share = spark["memory"]["tree_mb"] / ev_mb
            checks[f"quarter_memory_{key}"] = share <= 0.25
            print(f"  {_check(share <= 0.25)} <= 1/4 of Evidently's peak memory [{label}]: {share:.2f} "
                  f"({spark['memory']['tree_mb']:.0f} MB vs {ev_mb:.0f} MB)")
        else:
            print(f"  ? memory [{label}]: needs two completed Evidently sizes to extrapolate")
    bound = spark["seconds"] / numpy_["seconds"]
    checks["within_3x_numpy"] = bound <= 3
    print(f"  {_check(bound <= 3)} within 3x of the NumPy bound: {bound:.2f}x ({spark['seconds']:.1f} s vs "
          f"{numpy_['seconds']:.1f} s; NumPy peak {numpy_['memory']['tree_mb']:.0f} MB, streaming batches of "
          f"{args.batch_rows:,} rows)")
    in_memory_mb = 2 * rows * (len(NUMERIC) * 8 + 2 * 8) / 2**20
    print(f"    (the two sides as arrays take >= {in_memory_mb:.0f} MB; Spark's peak is set by its heap "
          f"({args.driver_memory}) and Arrow batches of 200,000 rows, not by the row count)")
    inc = spark["incremental"]
    daily = inc["day_s"] + (inc["merge_day_into_history_ms"] + inc["year_compare_ms"]) / 1000
    checks["incremental"] = inc["merged_equals_full"] and daily <= 0.5 * inc["full_current_s"]
    print(f"  {_check(checks['incremental'])} incremental: a new day ({inc['day_rows']:,} rows) profiles in "
          f"{inc['day_s']:.1f} s vs {inc['history_s']:.1f} s for the {inc['history_days']} days of history and "
          f"{inc['full_current_s']:.1f} s for all {inc['history_days'] + 1}; history + day merged = full profile "
          f"exactly: {'yes' if inc['merged_equals_full'] else 'NO'}; a daily run (new day + merge + drift) "
          f"{daily:.1f} s (target: <= half the full-history profile)")
    print(f"    merging {inc['year_profiles']:,} stored daily profiles (a year x {len(COLUMNS)} columns): "
          f"{inc['year_merge_ms']:.0f} ms, drift of the merged year: {inc['year_compare_ms']:.0f} ms; "
          f"the new day alone: " + "".join(_mark(inc['day_verdicts'].get(c)) for c in COLUMNS))

    out = {"rows": rows, "columns": COLUMNS, "shifts": SHIFTS, "threshold": THRESHOLD, "spec_seconds": spec_s,
           "generation": gen, "mem_limit_mb": limit_mb, "exact": exact, "numpy": numpy_, "spark": spark,
           "evidently": ev, "numpy_spark_histograms_identical": same_profiles, "checks": checks}
    for r in (numpy_, spark):
        r.pop("profiles", None)
    save_results(args.out, out)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if checks["same_verdicts_as_exact"] and same_profiles else 1


if __name__ == "__main__":
    sys.exit(main())
