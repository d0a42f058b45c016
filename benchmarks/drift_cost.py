"""Cost of drift detection (issue 14), every comparison at the same measured size.

A table of ``--rows`` rows (10 numeric columns n0..n9 - normal, lognormal and uniform - and 2
categorical columns, c0 with 12 values and c1 with 4) is compared with a reference of the same
size. In the current data n1, n2 and n3 are shifted by 0.05, 0.15 and 0.25 of their standard
deviation; nothing else changes, so the expected verdicts are n2 and n3 drifted (normed Wasserstein
0.15 and 0.25 >= 0.1) and everything else not (n1's 0.05 is below the threshold). Both sides are
Parquet folders of ten files each (the current side's files are its ten "days").

Paths, each in its own process, all measured the same way - the parent polls /proc every 0.2 s
and keeps the largest sum of RSS over the child's whole process tree (Spark: the Python driver
and the JVM it starts), so "peak MB" always includes the JVM:

* exact     - the ground truth: scipy's Wasserstein distance on the full sorted columns (normed
              by the reference's population std, as Evidently does) and the Jensen-Shannon
              distance of the full category frequencies. Verdicts: normed W >= 0.1, JS >= 0.1.
              (``--reuse-exact`` takes it from an earlier run on the same data in ``--work``.)
* numpy     - the baseline: the same-spec pass in one process with pyarrow + NumPy - the same
              ``ProfileSpec`` bins, counts, nulls, sums, sums of squares about the bins' centre,
              min/max and category counts - then ``compare_profiles``.
* spark     - Tracelake's path with the product's default settings (``local[*]``, 4 GB driver
              heap, as ``lineage/spark.py`` starts it): ``profile_spark`` on both sides (one
              aggregation inside the JVM), then ``compare_profiles``. Start-up (session and first
              job) and a warm-up (both paths profile the reference once first) are printed
              apart from the steady state, which is what the target is on. Then
              the incremental case (skip with ``--skip-incremental``): one new day profiled alone,
              the other nine, their merge equal to the full profile, a year of daily profiles merged.
* evidently - ``Report([DataDriftPreset()])`` on pandas frames of the first N rows of each side,
              for growing N (100k, 300k, 1M, ... up to --rows); each size has a hard timeout
              (--evidently-timeout, counted once its imports are done), and a size predicted to
              take well over it is not started. The largest size it finishes is then measured
              again with NumPy and Spark on exactly those rows: no figure is extrapolated.

Every child is also killed if its tree exceeds --mem-limit-mb (default: 80% of the memory
available at start), so an Evidently run that cannot fit stops instead of swapping the machine.
The spec (bins and categories) is derived once from a 200k-row sample of the reference with
``derive_spec`` and shared by the numpy and spark paths, whose histograms must agree exactly.

Run:  .venv/bin/python benchmarks/drift_cost.py --rows 10000000
      (a quick check: --rows 300000 --evidently-timeout 120; --work DIR keeps and reuses the data)
Targets: the same verdicts as the exact statistics; Spark at --rows <= 2x the same-spec NumPy pass
(steady state); Spark >= 10x faster than Evidently at the largest size Evidently finishes (both
measured there). Results go to benchmarks/results/drift_cost.json (git-ignored).
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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone): contention on a shared
    machine stretches wall time, not the CPU a path needs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        self.cpu: dict[int, float] = {}                                # pid -> CPU seconds (user + system)
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
            self.cpu[pid] = max(_cpu_s(pid), self.cpu.get(pid, 0.0))
        self.samples.append((time.time(), total, by_role))
        if self.limit_kb and total > self.limit_kb:
            self.over_limit = True

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak(self, until: float | None = None) -> dict:
        samples = [s for s in self.samples if until is None or s[0] <= until + self.interval] or [(0, 0, {})]
        _t, total, by_role = max(samples, key=lambda s: s[1])
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
    out["cpu_s"] = sum(monitor.cpu.values())      # the whole run of the child, start-up included
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
            counts.append(dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True)))
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
                centred = v - col.center                  # about the bins' centre, as the profiles
                prof.sum_sq += float(np.dot(centred, centred))
                if len(v):
                    prof.min, prof.max = min(prof.min, float(v.min())), max(prof.max, float(v.max()))
            else:
                vc = pc.value_counts(arr)
                for value, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
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
    _numpy_profiles(_warm_up_on(work), spec, batch_rows)
    warmup_s = time.perf_counter() - t
    t = time.perf_counter()
    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    ref = _numpy_profiles(work / "reference", spec, batch_rows)
    t_ref = time.perf_counter() - t
    cur = _numpy_profiles(work / "current", spec, batch_rows)
    t_cur = time.perf_counter() - t - t_ref
    verdicts, scores = _verdicts(compare_profiles(ref, cur, spec, DriftThresholds()))
    end = resource.getrusage(resource.RUSAGE_SELF)
    steady_cpu = end.ru_utime + end.ru_stime - cpu_start.ru_utime - cpu_start.ru_stime   # pyarrow's threads too
    return {"seconds": time.perf_counter() - t, "warmup_s": warmup_s, "steady_cpu_s": steady_cpu, "reference_s": t_ref,
            "current_s": t_cur,
            "verdicts": verdicts,
            "scores": scores, "profiles": {"reference": _digest(ref), "current": _digest(cur)}}


def _warm_up_on(work: Path) -> Path:
    """What both paths profile once, untimed for the target, before the timed passes: the
    whole reference. A JVM runs a new aggregation interpreted until the JIT has compiled it -
    the first 10M-row pass took ~1.9x the second, and one 1M-row file was not enough to reach
    the steady speed - while NumPy's first pass pays a smaller warm-up. Both first passes are
    printed beside the steady state, with the ratio counting them."""
    return work / "reference"


def _spark_session(driver_memory: str | None):
    from tracelake.lineage import get_spark, load_settings

    home = tempfile.mkdtemp(prefix="tracelake-drift-spark-")
    t = time.perf_counter()
    spark = get_spark(load_settings(home=home, spark_driver_memory=driver_memory))   # product defaults
    spark.range(10).count()       # session and first job: start-up, printed apart from the steady state
    return spark, home, time.perf_counter() - t


def child_spark(work: Path, driver_memory: str | None, incremental: bool) -> dict:
    from tracelake.monitors.drift.profiles import profile_spark
    from tracelake.monitors.drift.statistics import DriftThresholds, compare_profiles

    spec = _load_spec(work)
    spark, home, startup_s = _spark_session(driver_memory)
    jvm_pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())

    def cpu() -> float:   # this process and its JVM (the SQL path starts no Python workers)
        own = resource.getrusage(resource.RUSAGE_SELF)
        return own.ru_utime + own.ru_stime + _cpu_s(jvm_pid)

    t = time.perf_counter()
    profile_spark(spark.read.parquet(str(_warm_up_on(work))), spec)   # the JIT compiles the aggregation here
    warmup_s = time.perf_counter() - t
    cpu_start = cpu()
    marks = {"main_start": time.time()}
    t = time.perf_counter()
    ref = profile_spark(spark.read.parquet(str(work / "reference")), spec)
    t_ref = time.perf_counter() - t
    cur = profile_spark(spark.read.parquet(str(work / "current")), spec)
    t_cur = time.perf_counter() - t - t_ref
    verdicts, scores = _verdicts(compare_profiles(ref, cur, spec, DriftThresholds()))
    seconds = time.perf_counter() - t
    marks["main_end"] = time.time()
    out = {"seconds": seconds, "startup_s": startup_s, "warmup_s": warmup_s, "steady_cpu_s": cpu() - cpu_start,
           "reference_s": t_ref, "current_s": t_cur,
           "verdicts": verdicts, "scores": scores, "marks": marks, "settings": {
               "master": spark.conf.get("spark.master"), "driver_memory": spark.conf.get("spark.driver.memory")},
           "jvm_vmhwm_mb": (_status_kb(jvm_pid) or (0, 0))[1] / 1024,
           "driver_vmhwm_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "profiles": {"reference": _digest(ref), "current": _digest(cur)}}
    if incremental:
        out["incremental"] = _incremental(spark, work, spec, ref, cur, t_cur)
    spark.stop()
    shutil.rmtree(home, ignore_errors=True)
    return out


def _incremental(spark, work: Path, spec, ref, cur, t_cur: float) -> dict:
    """A new day is a tenth of the current data; the other nine are history."""
    import numpy as np

    from tracelake.monitors.drift.profiles import merge, profile_spark
    from tracelake.monitors.drift.statistics import compare_profiles

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
    return {"day_s": t_day, "day_rows": sum(p.count + p.nulls for p in day if p.column == "n0"),
            "history_s": t_history, "history_days": len(days) - 1, "full_current_s": t_cur,
            "merge_day_into_history_ms": t_merge_two * 1000, "merged_equals_full": exact,
            "year_profiles": len(year), "year_merge_ms": t_year_merge * 1000,
            "year_compare_ms": t_year_compare * 1000, "day_verdicts": day_verdicts}


def child_evidently(work: Path, rows: int) -> dict:
    import pyarrow.dataset as ds
    from evidently import Report
    from evidently.presets import DataDriftPreset

    from tracelake.monitors.drift.evidently_report import evidently_verdicts

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
    found = evidently_verdicts(snapshot.dict())      # read as the product reads them
    verdicts = {name: v.drifted for name, v in found.items()}
    scores = {name: v.score for name, v in found.items()}
    methods = {name: v.method for name, v in found.items()}
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
        out = child_spark(work, args.driver_memory, not args.skip_incremental)
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
    return {"runs": done, "stopped": stop, "largest_completed": done[-1]["rows"] if done else 0}


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


def make_subset(work: Path, n: int) -> Path:
    """The first ``n`` rows of each side (what the Evidently child reads), in four files a side so
    Spark reads them in parallel, with the same spec: every path measured on the same rows."""
    import numpy as np
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    sub = work / f"subset-{n}"
    if (sub / "spec.json").exists():
        return sub
    for side in ("reference", "current"):
        table = ds.dataset(work / side, format="parquet").head(n)
        (sub / side).mkdir(parents=True, exist_ok=True)
        bounds = np.linspace(0, table.num_rows, 5).astype(int)
        for i in range(4):
            pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), sub / side / f"part-{i}.parquet")
    shutil.copy(work / "spec.json", sub / "spec.json")
    return sub


def measure(work: Path, kind: str, label: str, extra: list[str], limit_mb: float, tag: str = "") -> dict:
    print(f"  {label} ...", flush=True)
    r = run_child(kind, work, extra, timeout=None, limit_mb=limit_mb, tag=tag)
    if r["status"] != "ok":
        raise RuntimeError(f"{kind} {r['status']}:\n{r.get('log_tail', '')}")
    start = f" (+ start-up {r['startup_s']:.1f} s)" if "startup_s" in r else ""
    cpu = f", CPU {r['steady_cpu_s']:.0f} s" if "steady_cpu_s" in r else ""
    print(f"    {r['seconds']:.1f} s{start}{cpu}, peak {r['memory']['tree_mb']:.0f} MB", flush=True)
    return r


def _target(name: str, value: float, baseline: float, ratio: float, target: str, met: bool, note: str = "") -> dict:
    print(f"  {'met' if met else 'NOT met'}: {name}: {value:.1f} s vs baseline {baseline:.1f} s = {ratio:.2f}x "
          f"(target {target}){note}")
    return {"value_s": value, "baseline_s": baseline, "ratio": ratio, "target": target, "met": met}


def report(rows: int, exact: dict, numpy_: dict, spark: dict, ev: dict, at_ev: dict | None) -> dict:
    truth = exact["verdicts"]
    print(f"\nDrift of {rows:,} rows against a {rows:,}-row reference "
          f"(D = drifted, . = not; verdicts: normed Wasserstein >= {THRESHOLD}, Jensen-Shannon >= {THRESHOLD})")
    print(f"  {'path':34s} {'rows':>11s} {'wall s':>8s} {'peak MB':>8s}  " + " ".join(f"{c:>2s}" for c in COLUMNS)
          + "  agree")
    table = [("exact (scipy, full sorted data)", exact, rows), ("NumPy same-spec pass (baseline)", numpy_, rows),
             ("Spark profiles (product defaults)", spark, rows)]
    if at_ev:
        table += [("NumPy same-spec pass", at_ev["numpy"], at_ev["rows"]),
                  ("Spark profiles", at_ev["spark"], at_ev["rows"])]
    table += [("Evidently DataDriftPreset", r, r["rows"]) for r in ev["runs"]]
    for label, r, n in table:
        print(f"  {label:34s} {n:11,d} {r['seconds']:8.1f} {r['memory']['tree_mb']:8.0f}  "
              + " ".join(f"{_mark(r['verdicts'].get(c)):>2s}" for c in COLUMNS) + f"  {_agree(r['verdicts'], truth)}/12")
    if ev["stopped"]:
        print(f"  Evidently stopped at {ev['stopped']['rows']:,} rows: {ev['stopped']['reason']}")
    sm = spark["memory"]
    print(f"  Spark ({spark['settings']['master']}, driver {spark['settings']['driver_memory']}): start-up (session + "
          f"first job) {spark['startup_s']:.1f} s and a first (warm-up) pass over the reference "
          f"{spark.get('warmup_s', 0):.1f} s (NumPy's {numpy_.get('warmup_s', 0):.1f} s), not in the steady state; "
          f"reference {spark['reference_s']:.1f} s, "
          f"current {spark['current_s']:.1f} s; peak tree {sm['tree_mb']:.0f} MB = "
          + " + ".join(f"{k} {v:.0f}" for k, v in sorted(sm["at_peak_mb"].items()) if v >= 1))
    checks = {"same_verdicts_as_exact": spark["verdicts"] == truth}
    print(f"\nTargets\n  {'met' if checks['same_verdicts_as_exact'] else 'NOT met'}: Spark verdicts = exact "
          f"full-data verdicts ({_agree(spark['verdicts'], truth)}/12)")
    ratio = spark["seconds"] / numpy_["seconds"]
    warm = spark.get("warmup_s", 0.0)
    first = (spark["seconds"] + warm) / (numpy_["seconds"] + numpy_.get("warmup_s", 0.0))
    checks["bound"] = _target(f"Spark at {rows:,} rows, steady state", spark["seconds"], numpy_["seconds"], ratio,
                              "<= 2x the same-spec NumPy pass", ratio <= 2,
                              f"; memory {sm['tree_mb']:.0f} MB vs {numpy_['memory']['tree_mb']:.0f} MB; "
                              f"{first:.2f}x counting both first passes, "
                              f"{(spark['seconds'] + spark['startup_s'] + warm) / numpy_['seconds']:.2f}x "
                              f"counting Spark's start-up and warm-up; "
                              f"CPU {spark.get('steady_cpu_s', float('nan')):.0f} s vs "
                              f"{numpy_.get('steady_cpu_s', float('nan')):.0f} s")
    if at_ev:
        n, ev_r, sp = at_ev["rows"], at_ev["evidently"], at_ev["spark"]
        speed = ev_r["seconds"] / sp["seconds"]
        checks["vs_evidently"] = _target(
            f"Spark at {n:,} rows, the largest size Evidently finishes (speed-up = Evidently / Spark)", sp["seconds"],
            ev_r["seconds"], speed, ">= 10x faster than Evidently", speed >= 10,
            f"; {ev_r['seconds'] / (sp['seconds'] + sp['startup_s']):.1f}x counting Spark's start-up; memory "
            f"Spark {sp['memory']['tree_mb']:.0f} MB vs Evidently {ev_r['memory']['tree_mb']:.0f} MB "
            f"({sp['memory']['tree_mb'] / ev_r['memory']['tree_mb']:.2f}x); NumPy at {n:,}: "
            f"{at_ev['numpy']['seconds']:.1f} s")
    else:
        print("  not measured: Evidently ran at no size (--skip-evidently) or finished none")
    return checks


def print_incremental(inc: dict) -> None:
    daily = inc["day_s"] + (inc["merge_day_into_history_ms"] + inc["year_compare_ms"]) / 1000
    print(f"  incremental: a new day ({inc['day_rows']:,} rows) profiles in {inc['day_s']:.1f} s vs "
          f"{inc['history_s']:.1f} s for the {inc['history_days']} days of history and {inc['full_current_s']:.1f} s "
          f"for all; history + day merged = full profile exactly: {'yes' if inc['merged_equals_full'] else 'NO'}; "
          f"a daily run (new day + merge + drift) {daily:.1f} s; merging {inc['year_profiles']:,} stored daily "
          f"profiles: {inc['year_merge_ms']:.0f} ms")


def _args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of each side (default 10M)")
    parser.add_argument("--evidently-timeout", type=float, default=600.0, help="seconds per Evidently size (after its imports)")
    parser.add_argument("--evidently-sizes", help="comma-separated row counts (default 100k,300k,1M,3M,... up to --rows)")
    parser.add_argument("--driver-memory", default=None, help="Spark driver heap (default: the product's, 4g)")
    parser.add_argument("--mem-limit-mb", type=float, default=None, help="kill a child whose tree exceeds this")
    parser.add_argument("--batch-rows", type=int, default=500_000, help="NumPy path batch size")
    parser.add_argument("--work", help="data folder, kept and reused across runs (default: a temporary folder, removed)")
    parser.add_argument("--reuse-exact", action="store_true",
                        help="take the exact statistics from an earlier run in --work")
    parser.add_argument("--skip-incremental", action="store_true", help="leave out the incremental (daily) case")
    parser.add_argument("--skip-evidently", action="store_true", help="only the exact, NumPy and Spark paths")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "drift_cost.json"))
    parser.add_argument("--child", choices=["exact", "numpy", "spark", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def _prepare(args) -> tuple[Path, float]:
    import pyarrow.dataset as ds

    from tracelake.monitors.drift.profiles import derive_spec

    limit_mb = args.mem_limit_mb or 0.8 * _mem_available_mb()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="tracelake-drift-"))
    work.mkdir(parents=True, exist_ok=True)
    gen = make_data(work, args.rows)
    print(f"{args.rows:,} rows x {len(COLUMNS)} columns per side "
          f"({'reused' if gen['reused'] else 'written in {:.0f} s'.format(gen['seconds'])}; "
          f"{_dir_mb(work / 'reference') + _dir_mb(work / 'current'):.0f} MB Parquet in {work}); "
          f"shifts {', '.join(f'{k} +{v}σ' for k, v in SHIFTS.items())}; "  # noqa: RUF001 - sigma, the standard deviation
          f"children killed above {limit_mb:.0f} MB")
    sample = ds.dataset(work / "reference", format="parquet").head(min(args.rows, SPEC_SAMPLE)).to_pandas()
    (work / "spec.json").write_text(derive_spec(sample, list(NUMERIC), CATEGORICAL).to_json())
    return work, limit_mb


def main() -> int:
    args = _args()
    if args.child:
        _child(args)
        return 0
    work, limit_mb = _prepare(args)
    exact_file = work / "result-exact.json"
    if args.reuse_exact and exact_file.exists():
        exact = {**json.loads(exact_file.read_text()), "memory": {"tree_mb": float("nan")}}
        print(f"  exact full-data statistics: reused from {exact_file} ({exact['seconds']:.0f} s when measured)")
    else:
        exact = measure(work, "exact", "exact full-data statistics", [], limit_mb)
    numpy_ = measure(work, "numpy", "NumPy same-spec pass (baseline)", ["--batch-rows", str(args.batch_rows)], limit_mb)
    spark_extra = (["--driver-memory", args.driver_memory] if args.driver_memory else []) + (
        ["--skip-incremental"] if args.skip_incremental else [])
    spark = measure(work, "spark", "Spark profiles, product defaults", spark_extra, limit_mb)
    sizes = [] if args.skip_evidently else evidently_sizes(args.rows, args.evidently_sizes)
    ev = run_evidently(work, args.rows, sizes, args.evidently_timeout, limit_mb)
    at_ev = None
    if ev["runs"]:
        n = ev["largest_completed"]
        sub = work if n == args.rows else make_subset(work, n)
        at_ev = {"rows": n, "evidently": ev["runs"][-1], "numpy": numpy_ if n == args.rows else measure(
            sub, "numpy", f"NumPy at {n:,} rows", ["--batch-rows", str(args.batch_rows)], limit_mb, tag=f"numpy-{n}"),
                 "spark": spark if n == args.rows else measure(
            sub, "spark", f"Spark at {n:,} rows", [*spark_extra, "--skip-incremental"], limit_mb, tag=f"spark-{n}")}
    same_profiles = _profiles_match(numpy_["profiles"], spark["profiles"])
    checks = report(args.rows, exact, numpy_, spark, ev, at_ev)
    print(f"  NumPy and Spark histograms identical: {'yes' if same_profiles else 'NO'}")
    if "incremental" in spark:
        print_incremental(spark["incremental"])
    out = {"rows": args.rows, "columns": COLUMNS, "shifts": SHIFTS, "threshold": THRESHOLD, "mem_limit_mb": limit_mb,
           "exact": exact, "numpy": numpy_, "spark": spark, "evidently": ev, "at_evidently_size": at_ev,
           "numpy_spark_histograms_identical": same_profiles, "checks": checks}
    for r in (numpy_, spark, *((at_ev or {}).get(k, {}) for k in ("numpy", "spark"))):
        r.pop("profiles", None)
    save_results(args.out, out)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if checks["same_verdicts_as_exact"] and same_profiles else 1


if __name__ == "__main__":
    sys.exit(main())
