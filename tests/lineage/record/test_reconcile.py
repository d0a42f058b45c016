"""Killed runs: the open marker outlives the process and reconciliation records it abandoned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mlflow import MlflowClient

from tracelake.lineage import open_lakehouse
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.lineage.record.reconcile import reconcile_mlflow, reconcile_open_runs

SCRIPT = textwrap.dedent('''
    import os, sys, time
    import dagster as dg
    import pandas as pd
    from tracelake.lineage import component, LakehouseResource, DeltaIOManager, SparkResource, MlflowResource
    from tracelake.lineage.record.recorder import Recorder

    home, marker, mode = sys.argv[1], sys.argv[2], sys.argv[3]

    @component
    def victim():
        open(marker, "w").write("started")
        if mode == "sleep":
            time.sleep(600)
        return pd.DataFrame({"x": [1, 2, 3]})

    if mode == "die-after-commit":
        def die(self, run):
            open(marker, "w").write("committed")
            os._exit(9)
        Recorder.succeed = die

    lake = LakehouseResource(home=home, spark=SparkResource(home=home), mlflow=MlflowResource(home=home))
    dg.materialize([victim], resources={"lakehouse": lake, "delta_io_manager": DeltaIOManager(lakehouse=lake)})
''')


def _start(tmp_path: Path, home: str, mode: str) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "victim.py"
    script.write_text(SCRIPT)
    marker = tmp_path / f"marker-{mode}"
    proc = subprocess.Popen([sys.executable, str(script), home, str(marker), mode],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, marker


def _wait_for(predicate, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_killed_run_is_never_succeeded_and_becomes_abandoned(tmp_path, home, spark):
    proc, marker = _start(tmp_path, home, "sleep")
    _wait_for(marker.exists)
    lake = open_lakehouse(home)
    (opened,) = lake.journal.open_runs()
    assert lake.store.component_runs().iloc[0]["status"] == "started"
    # While the process lives, reconciliation leaves the run alone.
    assert [r.action for r in reconcile_open_runs(lake)] == ["still-running"]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)

    results = reconcile_open_runs(lake)
    assert [(r.run_id, r.action) for r in results] == [(opened.run_id, "abandoned")]
    rec = lake.store.component_runs().iloc[0]
    assert rec["status"] == "abandoned" and "no output was committed" in rec["error_message"]
    assert rec["output_version"] is None
    # Its MLflow run (created in the background before the kill) is closed as KILLED.
    lake.flush()
    reconcile_mlflow(lake)
    found = lake.mlflow.find_run(opened.run_id)
    if found:  # the process may have died before MLflow answered
        assert MlflowClient(tracking_uri=lake.mlflow.tracking_uri).get_run(found[1]).info.status == "KILLED"


def test_a_run_killed_after_its_commit_is_abandoned_with_the_version_that_landed(tmp_path, home, spark):
    proc, marker = _start(tmp_path, home, "die-after-commit")
    assert proc.wait(300) == 9 and marker.read_text() == "committed"
    lake = open_lakehouse(home)
    (result,) = reconcile_open_runs(lake)
    assert result.action == "abandoned" and "had landed" in result.detail
    rec = lake.store.component_runs().iloc[0]
    assert rec["status"] == "abandoned" and rec["output_version"] == 0 and rec["output_rows"] == 3
    # Nothing claims success, and every claimed version exists.
    assert verify_lakehouse(lake).ok
