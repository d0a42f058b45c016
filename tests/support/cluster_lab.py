"""Helpers of the cluster tests (tests/cluster): the local cluster's handle, its workers, timings.

Shared here (tests/support is on the tests' path) because test modules import them and pytest's
importlib mode does not let a test module import its folder's conftest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scale" / "cluster.sh"
WORKER = REPO / "tests" / "cluster" / "worker.py"
RESULTS = REPO / "benchmarks" / "results"
# The tests' own ports: never the defaults of `tracelake cluster up`, never a server's defaults.
PORTS = {"TRACELAKE_CLUSTER_PG_PORT": "55442", "TRACELAKE_CLUSTER_S3_PORT": "18433",
         "TRACELAKE_CLUSTER_SPARK_PORT": "17087", "TRACELAKE_CLUSTER_SPARK_UI_PORT": "18190",
         "TRACELAKE_CLUSTER_CONNECT_PORT": "15022", "TRACELAKE_CLUSTER_MLFLOW_PORT": "15010"}


@dataclass
class Cluster:
    directory: Path
    env: dict[str, str]                      # what cluster.sh wrote to cluster.env
    timings: dict[str, float] = field(default_factory=dict)

    def client_env(self, home: str, **extra: str) -> dict[str, str]:
        """The environment of a process that works on lakehouse ``home`` of this cluster."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("TRACELAKE_FAILPOINT")}
        # failpoints only when this process is given them, never inherited from the test's own
        return {**inherited, **self.env, "TRACELAKE_HOME": home, "PYTHONUNBUFFERED": "1", **extra}

    def new_home(self, name: str) -> str:
        return f"s3a://lakehouse/{name}-{uuid.uuid4().hex[:8]}"

    def cli(self, home: str, *args: str, check: bool = True, timeout: float = 900, **extra: str) -> Any:
        """``tracelake ARGS`` against ``home``: checked, the parsed answer of ``--json`` (else the
        process); with ``check=False``, always the process."""
        cmd = [sys.executable, "-m", "tracelake.jobs.cli", *args]
        proc = subprocess.run(cmd, env=self.client_env(home, **extra), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"tracelake {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        if check and "--json" in args:
            return json.loads(proc.stdout)
        return proc   # unchecked: the process, for the caller to judge its exit code and stderr

    def spark_script(self, *args: str) -> None:
        subprocess.run(["bash", str(REPO / "scale" / "services" / "spark.sh"), *args], env=self.script_env(),
                       check=True, timeout=600)

    def script_env(self) -> dict[str, str]:
        return {**os.environ, **PORTS, "TRACELAKE_CLUSTER_DIR": str(self.directory)}


def read_cluster_env(directory: Path) -> dict[str, str]:
    env = {}
    for line in (directory / "cluster.env").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value[1:-1] if value[:1] == value[-1:] == "'" else value
    return env


def save_timing(name: str, seconds: float, **facts: Any) -> None:
    """Measured durations of the cluster suite (benchmarks/results/cluster_suite.json, git-ignored)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "cluster_suite.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = {"seconds": round(seconds, 1), **facts}
    path.write_text(json.dumps(data, indent=2))


def processes_under(directory: Path) -> list[str]:
    """Processes whose command line names the cluster folder (what `down` must have stopped)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(directory) in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


class Worker:
    """One ``worker.py`` process in its own process group (killable whole, like a lost machine)."""

    alive: ClassVar[list[Worker]] = []   # killed by the cluster fixture before `down`, if a test left any

    def __init__(self, cluster: Cluster, home: str, partitions: list[str], out: Path, **extra: str):
        self.out = out
        self.log = out.with_suffix(".log")
        env = cluster.client_env(home, **extra)
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--partitions", ",".join(partitions), "--out", str(out)],
            env=env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True, cwd=str(REPO))
        Worker.alive.append(self)

    def wait(self, timeout: float = 1800) -> dict[str, Any]:
        rc = self.proc.wait(timeout)
        assert rc == 0, f"worker exited {rc}; log tail:\n{self.log.read_text()[-4000:]}"
        return json.loads(self.out.read_text())

    def started(self) -> list[dict[str, Any]]:
        path = Path(f"{self.out}.started")
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def kill(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(60)


def start_delta_rs_appenders(uri: str, writers: int, appends: int, folder: Path) -> list[subprocess.Popen]:
    """``writers`` processes that each append ``appends`` times to the Delta table ``uri`` with
    delta-rs, all released at once (each waits, imported and ready, for a shared go-file)."""
    go = folder / "go"
    procs = []
    for w in range(writers):
        ready = folder / f"ready{w}"
        cmd = [sys.executable, str(Path(__file__)), "delta-rs-append", uri, str(w), str(appends), str(ready), str(go)]
        procs.append(subprocess.Popen(cmd, stdout=open(folder / f"appender{w}.log", "w"), stderr=subprocess.STDOUT,
                                      cwd=str(REPO)))
    wait_until(lambda: all((folder / f"ready{w}").exists() for w in range(writers)) or
               any(p.poll() is not None for p in procs), 600, "the delta-rs appenders to be ready")
    go.touch()
    return procs


def _delta_rs_append(uri: str, writer: int, appends: int, ready: Path, go: Path) -> None:
    """One appender process: the same delta-rs call, options and retries as the audit store's flush
    (``AuditStore``: ``storage_options`` None, so delta-rs reads the AWS_* variables itself)."""
    import pyarrow as pa
    from deltalake import CommitProperties, write_deltalake

    ready.touch()
    wait_until(go.exists, 600, "the go-file", every=0.01)
    for seq in range(appends):
        rows = pa.table({"writer": pa.array([writer] * ROWS_PER_APPEND, pa.int64()),
                         "seq": pa.array([seq] * ROWS_PER_APPEND, pa.int64()),
                         "i": pa.array(range(ROWS_PER_APPEND), pa.int64())})
        props = CommitProperties(custom_metadata={"writer": str(writer), "seq": str(seq)}, max_commit_retries=50)
        write_deltalake(uri, rows, mode="append", storage_options=None, commit_properties=props)


ROWS_PER_APPEND = 10


def wait_until(predicate, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


if __name__ == "__main__":      # python tests/support/cluster_lab.py delta-rs-append URI WRITER APPENDS READY GO
    if sys.argv[1:2] != ["delta-rs-append"]:
        sys.exit(f"usage: {sys.argv[0]} delta-rs-append URI WRITER APPENDS READY GO")
    _delta_rs_append(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]), Path(sys.argv[6]))
