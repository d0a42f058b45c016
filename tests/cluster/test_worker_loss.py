"""Machines that disappear: a Spark worker killed under a job, a pipeline worker's disk destroyed.

- A Spark worker (and its executor) is SIGKILLed while a materialisation's tasks run on it:
  Spark re-runs the lost tasks on the other worker, and the record tells the truth - succeeded
  with the rows that are in the table, or failed with nothing visible.
- The machine running the pipeline loses its local disk and dies in the middle of a run: the
  journal is in PostgreSQL, so another machine finds every record - the runs that succeeded
  before, and the interrupted one (recorded as abandoned by reconciliation) - and the audit
  verifies clean. With the SQLite journal of the embedded profile those records would be gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from cluster_lab import Worker, save_timing, wait_until

pytestmark = pytest.mark.cluster


def _worker_pids(cluster, instance: int) -> list[int]:
    """The Spark Worker daemon's pid and its children (the executors it launched)."""
    pid_file = next((cluster.directory / "spark" / "pids").glob(f"*Worker-{instance}.pid"))
    pid = int(pid_file.read_text())
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == pid]
    return [pid, *children]


def _ppid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_spark_worker_killed_mid_job(cluster, tmp_path: Path):
    from deltalake import DeltaTable

    home = cluster.new_home("worker-loss")
    worker = Worker(cluster, home, ["2026-04-01"], tmp_path / "w.json", TL_WORKER_SLOW="25")
    wait_until(worker.started, 900, "the run to open")
    executors = wait_until(lambda: len(_worker_pids(cluster, 1)) > 1 and _worker_pids(cluster, 1), 600,
                           "an executor on worker 1")
    time.sleep(8)  # tasks are sleeping inside the executors now
    t0 = time.monotonic()
    for pid in executors:
        os.kill(pid, signal.SIGKILL)
    try:
        result = worker.wait()
    finally:
        cluster.spark_script("start-worker", "1")
    save_timing("spark_worker_loss_run", time.monotonic() - t0)

    (outcome,) = result["runs"]
    (run,) = cluster.cli(home, "runs", "--component", "numbers", "--json")
    if outcome["success"]:
        assert run["status"] == "succeeded"
        table = DeltaTable(f"{home}/tables/numbers")
        assert table.version() == run["output_version"]
        ids = table.to_pyarrow_table(columns=["_tl_run_id"]).column("_tl_run_id").to_pylist()
        assert ids == [run["run_id"]] * 10 and run["output_rows"] == 10
    else:  # a clean failure: recorded as failed, nothing visible in the table
        assert run["status"] == "failed" and run["error_message"]
        assert not DeltaTable.is_deltatable(f"{home}/tables/numbers") or \
            DeltaTable(f"{home}/tables/numbers").to_pyarrow_table().num_rows == 0
    assert cluster.cli(home, "audit", "verify", "--json")["ok"]


def test_pipeline_machine_loses_its_disk_mid_run(cluster, tmp_path: Path):
    home = cluster.new_home("disk-loss")
    local = tmp_path / "machine-a"      # everything the pipeline's machine keeps on its own disk
    local.mkdir()
    marker = tmp_path / "paused"
    worker = Worker(cluster, home, ["2026-05-01", "2026-05-02"], tmp_path / "w.json",
                    HOME=str(local), TMPDIR=str(local), TRACELAKE_JOURNAL_DIR=str(local / "journal-locks"),
                    TRACELAKE_FAILPOINTS="after_commit=pause", TRACELAKE_FAILPOINT_MARKER=str(marker),
                    TRACELAKE_SPARK_CONF=f"spark.cores.max=2;spark.executor.cores=1;spark.executor.memory=512m;"
                                         f"spark.local.dir={local / 'spark'}")
    # The first run commits and stops after its commit - the record is not final yet; let it go on,
    # finish, and the second run reach the same point: then the machine dies with its disk.
    wait_until(marker.exists, 900, "the first run to commit")
    marker.unlink()
    wait_until(lambda: marker.exists() and len(worker.started()) == 2, 900, "the second run to commit")
    first, second = (s["run_id"] for s in worker.started())
    shutil.rmtree(local)                # the disk is gone ...
    worker.kill()                       # ... and so is the machine

    # Another machine (this process's environment, a fresh disk) sees both runs in the journal.
    runs = {r["run_id"]: r for r in cluster.cli(home, "runs", "--component", "numbers", "--json")}
    assert runs[first]["status"] == "succeeded"
    assert runs[second]["status"] == "started", "the interrupted run's open marker survived the disk"
    cluster.cli(home, "audit", "reconcile", "--json")
    cluster.cli(home, "audit", "flush", "--json")
    runs = {r["run_id"]: r for r in cluster.cli(home, "runs", "--component", "numbers", "--json")}
    assert runs[first]["status"] == "succeeded" and runs[first]["output_rows"] == 10
    assert runs[second]["status"] == "abandoned"
    assert "had landed" in runs[second]["error_message"], "the record says its commit landed (then rolled back)"
    verify = cluster.cli(home, "audit", "verify", "--json")
    assert verify["ok"], verify
