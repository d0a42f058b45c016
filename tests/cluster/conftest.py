"""The local cluster for the ``cluster`` tests: brought up once per session, brought down after.

``scale/cluster.sh up`` starts real servers - PostgreSQL 15, SeaweedFS, a Spark master and two
workers, the MLflow server and dagster-daemon - in a folder of the session's own, on ports of
the tests' own (so a developer's `tracelake cluster up` on the default ports is never touched).
Every test gets its own lakehouse prefix in the one bucket and its own journal namespace (the
journal's namespace is the lakehouse root), so tests share the servers, not their state.

Workers and CLI commands run as subprocesses with the cluster's environment: one Spark driver
per process, as in production. Run with ``pytest -m cluster tests/cluster`` (the main suite
deselects them; see README).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from cluster_lab import PORTS, REPO, SCRIPT, Cluster, Worker, processes_under, read_cluster_env, save_timing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.cluster)
            # Spark drivers on a 2-core cluster: a test (with its fixtures) may take far longer than
            # the main suite's 15 minutes when the machine is shared.
            item.add_marker(pytest.mark.timeout(3600))


@pytest.fixture(scope="session")
def cluster():
    """Up once (session), down at the end - even when a test failed - and checked to be gone."""
    if not (REPO / "scale" / "bin" / "weed").exists() or not any((REPO / "jars" / "s3a-lib").glob("hadoop-aws-*.jar")):
        pytest.fail("the cluster extras are not installed: run ./install.sh --cluster", pytrace=False)
    # /tmp, not pytest's tmp_path: PostgreSQL runs as the `postgres` user, which cannot enter 0700 folders.
    directory = Path(tempfile.mkdtemp(prefix="tracelake-cluster-"))
    directory.chmod(0o755)
    env = {**os.environ, **PORTS, "TRACELAKE_CLUSTER_DIR": str(directory)}
    t0 = time.monotonic()
    up = subprocess.run(["bash", str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=900)
    up_seconds = time.monotonic() - t0
    cluster = Cluster(directory, read_cluster_env(directory) if (directory / "cluster.env").exists() else {},
                      {"up": up_seconds})
    try:
        if up.returncode != 0:
            pytest.fail(f"cluster up failed ({up.returncode}):\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}",
                        pytrace=False)
        save_timing("cluster_up", up_seconds, log=up.stdout.strip().splitlines())
        saved = {k: os.environ.get(k) for k in cluster.env}
        os.environ.update({k: v for k, v in cluster.env.items() if k.startswith("AWS_")})  # delta-rs in this process
        yield cluster
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    finally:
        for worker in Worker.alive:      # a test that failed half-way may have left its workers running
            if worker.proc.poll() is None:
                worker.kill()
        t1 = time.monotonic()
        down = subprocess.run(["bash", str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=600)
        save_timing("cluster_down", time.monotonic() - t1, log=down.stdout.strip().splitlines())
        leftover = processes_under(directory)
        if down.returncode == 0 and not leftover:
            shutil.rmtree(directory, ignore_errors=True)
        assert down.returncode == 0, f"cluster down failed:\n{down.stdout}\n{down.stderr}"
        assert not leftover, f"processes still running after down: {leftover}"


