"""A Dagster run whose processes were killed after its component runs finished is failed in Dagster
too - also when its steps ran in subprocesses (multiprocess executor), whose pids are not the run's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import dagster as dg
import pytest

from tracelake.lineage.processes import pid_alive
from tracelake.lineage.record.dagster_runs import DagsterRuns

pytestmark = pytest.mark.unit

# A run worker killed outright in the middle of its run: Dagster keeps the run STARTED.
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import dagster as dg

    @dg.op
    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    @dg.job
    def doomed():
        die()

    with dg.DagsterInstance.get() as instance:
        doomed.execute_in_process(instance=instance)
""")


def killed_run(home) -> tuple[dg.DagsterInstance, dg.DagsterRun]:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    subprocess.run([sys.executable, "-c", KILLED_RUN], env=env, capture_output=True, timeout=300)
    instance = dg.DagsterInstance.from_config(str(home))
    (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.STARTED
    return instance, run


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_run_whose_steps_ran_in_other_processes_is_failed(tmp_path):
    instance, run = killed_run(tmp_path)
    step_pid = dead_pid()         # a step subprocess of the run worker, gone with it
    records = [{"dagster_run_id": run.run_id, "host": socket.gethostname(), "pid": step_pid}]
    failed = DagsterRuns(instance).fail_dead(records, pid_alive)
    assert [r for r, _ in failed] == [run.run_id]
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_run_with_a_live_process_or_records_from_elsewhere_is_left_alone(tmp_path):
    instance, run = killed_run(tmp_path)
    alive = [{"dagster_run_id": run.run_id, "host": socket.gethostname(), "pid": os.getpid()}]
    assert DagsterRuns(instance).fail_dead(alive, pid_alive) == []
    elsewhere = [{"dagster_run_id": run.run_id, "host": "another-host", "pid": dead_pid()}]
    assert DagsterRuns(instance).fail_dead(elsewhere, pid_alive) == []
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
