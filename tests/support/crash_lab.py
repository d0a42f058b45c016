"""The crash lab: real worker processes, real kills of whole process groups, real small disks.

Shared by ``tests/crash`` and ``benchmarks/crash_consistency.py``. A :class:`Lab` is one
lakehouse with its Dagster instance (``DAGSTER_HOME``), its anchor folder and its MLflow store
(SQLite inside the lakehouse). Workers (``tests/crash/worker.py``) run toy components in it, each
in a new session - its own process group, so ``os.killpg`` takes Python, the Spark JVM and
Spark's Python workers down together - and stop where ``TRACELAKE_FAILPOINTS`` says. Every
question afterwards (reconcile, verify, flush, the observation of the final state) is asked by a
fresh process, as an operator would after a crash.

:class:`SmallDisk` is a tmpfs of a few megabytes mounted over one folder of the lab (the tables,
the audit tables, the journal or the anchors), filled to the last byte, remounted read-only,
freed - a real ``ENOSPC``/``EROFS`` from the kernel, not a simulated one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["REPO", "CliResult", "Lab", "MountRefused", "SmallDisk", "Worker", "wait_until"]

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "crash" / "worker.py"
OBSERVER = Path(__file__).with_name("crash_checks.py")
_VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable

# Environment a lab's processes must not inherit from the test session (its own MLflow store, ...).
_DROPPED = ("MLFLOW_TRACKING_URI", "TRACELAKE_FAILPOINTS", "TRACELAKE_FAILPOINT_MARKER", "TRACELAKE_HOME",
            "TRACELAKE_JOURNAL_DIR", "DAGSTER_HOME", "TRACELAKE_ANCHOR_DIR", "PYTEST_CURRENT_TEST")


def wait_until(predicate, timeout: float, what: str, poll: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (f"`tracelake {' '.join(self.args)}` exited {self.returncode}\n"
                f"{self.stdout[-3000:]}\n{self.stderr[-3000:]}")


@dataclass
class Worker:
    """One worker process (its own process group) and the files it writes."""

    name: str
    proc: subprocess.Popen
    marker: Path
    out: Path
    log: Path
    killed_at: list[str] = field(default_factory=list)

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session: the worker leads its own group

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_marker(self, timeout: float = 600, point: str | None = None) -> dict[str, Any]:
        """The failpoint the worker is paused at (its marker), waiting for it to get there."""

        def reached() -> dict[str, Any] | None:
            if self.marker.exists():
                try:
                    return json.loads(self.marker.read_text())
                except ValueError:
                    return None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} ended (exit {self.proc.returncode}) before reaching "
                                     f"{point or 'a failpoint'}; log tail:\n{self.log_text()[-4000:]}")
            return None

        where = wait_until(reached, timeout, f"worker {self.name} to reach {point or 'a failpoint'}")
        if point is not None and where["point"] != point:
            raise AssertionError(f"worker {self.name} paused at {where['point']}, expected {point}")
        return where

    def resume(self) -> None:
        """Let a paused worker go on (the failpoint polls for its marker)."""
        self.marker.unlink()

    def kill(self) -> None:
        """SIGKILL to the whole process group, then wait until not one of its processes is left."""
        where = json.loads(self.marker.read_text())["point"] if self.marker.exists() else "?"
        self.killed_at.append(where)
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(60)

        def group_gone() -> bool:
            try:
                os.killpg(self.pgid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_until(group_gone, 60, f"process group {self.pgid} of worker {self.name} to disappear")
        if self.marker.exists():
            self.marker.unlink()

    def wait(self, timeout: float = 900) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker {self.name} did not finish in {timeout:.0f}s; killed. Log tail:\n"
                                 f"{self.log_text()[-4000:]}") from None

    def result(self) -> dict[str, Any]:
        if not self.out.exists():
            raise AssertionError(f"worker {self.name} wrote no result; log tail:\n{self.log_text()[-4000:]}")
        return json.loads(self.out.read_text())

    def started(self) -> list[dict[str, Any]]:
        """Every component run this worker opened (durable before any work of the run)."""
        path = Path(str(self.out) + ".started")
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def run_ids(self) -> list[str]:
        return [s["run_id"] for s in self.started()]

    def alive(self) -> bool:
        return self.proc.poll() is None


# `tracelake ...` held at the start line: imports done, then wait for the go file.
_AT_ONCE = """
import json, os, sys, time
import tracelake.lineage.integrity.verify, tracelake.lineage.record.reconcile, tracelake.lineage.record.dagster_runs
from tracelake.jobs.cli import main
marker, go, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(marker + ".tmp", "w") as fh:
    json.dump({"point": "ready", "pid": os.getpid()}, fh)
os.replace(marker + ".tmp", marker)
while not os.path.exists(go):
    time.sleep(0.005)
sys.exit(main(argv))
"""


class Lab:
    """One lakehouse, its Dagster instance and anchor folder, under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.home = self.root / "lakehouse"
        self.dagster_home = self.root / "dagster"
        self.anchors = self.root / "anchors"
        self.logs = self.root / "logs"
        for folder in (self.dagster_home, self.anchors, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.workers: list[Worker] = []

    @classmethod
    def copy_of(cls, base: Lab, root: Path) -> Lab:
        """A private copy of ``base`` (lakehouse and Dagster instance; anchors start afresh)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(base.home, root / "lakehouse")
        shutil.copytree(base.dagster_home, root / "dagster")
        return cls(root)

    # -- environment ------------------------------------------------------------------------
    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
        env.update({
            "TRACELAKE_HOME": str(self.home),
            "DAGSTER_HOME": str(self.dagster_home),
            "TRACELAKE_ANCHOR_DIR": str(self.anchors),
            # One core each: several workers share a small machine.
            "TRACELAKE_SPARK_MASTER": "local[1]",
            "TRACELAKE_SPARK_DRIVER_MEMORY": "1g",
            "TRACELAKE_SPARK_SHUFFLE_PARTITIONS": "1",
            "PYTHONUNBUFFERED": "1",
            # JVM start-up dominates a worker on a small machine: one-tier JIT and the serial GC
            # start Spark about twice as fast, and change nothing a crash test looks at.
            "JAVA_TOOL_OPTIONS": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto",
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        })
        env.update(extra or {})
        return env

    # -- workers ----------------------------------------------------------------------------
    def start(self, name: str, assets: Sequence[str], partitions: Sequence[str] = (), *, runs: Sequence[str] = (),
              failpoints: str | None = None, flush_records: int = 1000, external_spark: bool = False,
              scale: int = 1, env: dict[str, str] | None = None) -> Worker:
        """A worker materialising ``assets`` x ``partitions``, then ``runs`` (``asset:partition``)."""
        out = self.logs / f"{name}.json"
        marker = self.logs / f"{name}.marker"
        log = self.logs / f"{name}.log"
        for stale in (out, marker, Path(str(out) + ".started")):
            stale.unlink(missing_ok=True)
        extra = {"TL_CRASH_SCALE": str(scale), **(env or {})}
        if failpoints:
            extra["TRACELAKE_FAILPOINTS"] = failpoints
            extra["TRACELAKE_FAILPOINT_MARKER"] = str(marker)
        cmd = [PYTHON, str(WORKER), "--home", str(self.home), "--out", str(out),
               "--partitions", ",".join(partitions), "--flush-records", str(flush_records)]
        for asset in assets:
            cmd += ["--asset", asset]
        for run in runs:
            cmd += ["--run", run]
        if external_spark:
            cmd.append("--external-spark")
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env(extra),
                                    cwd=str(self.root), start_new_session=True)
        worker = Worker(name, proc, marker, out, log)
        self.workers.append(worker)
        return worker

    def start_cli(self, name: str, *args: str, failpoints: str | None = None, at: Path | None = None) -> Worker:
        """A ``tracelake`` command as a killable worker (its own process group, failpoints armed).

        ``at``: the command starts once that file exists, after its imports are done (its marker
        says ``ready`` meanwhile) - so several commands can be started at the same instant."""
        out = self.logs / f"{name}.json"
        marker = self.logs / f"{name}.marker"
        log = self.logs / f"{name}.log"
        for stale in (out, marker):
            stale.unlink(missing_ok=True)
        extra = {}
        if failpoints:
            extra = {"TRACELAKE_FAILPOINTS": failpoints, "TRACELAKE_FAILPOINT_MARKER": str(marker)}
        cmd = [PYTHON, "-m", "tracelake.jobs.cli", "--home", str(self.home), *args]
        if at is not None:
            cmd = [PYTHON, "-c", _AT_ONCE, str(marker), str(at), "--home", str(self.home), *args]
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env(extra),
                                    cwd=str(self.root), start_new_session=True)
        worker = Worker(name, proc, marker, out, log)
        self.workers.append(worker)
        return worker

    def python(self, code: str, *args: str, timeout: float = 300) -> str:
        """Run ``code`` in a fresh interpreter of the lab (its pid is gone when this returns)."""
        proc = subprocess.run([PYTHON, "-c", code, *args], capture_output=True, text=True, env=self.env(),
                              cwd=str(self.root), timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"helper process failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc.stdout

    def kill_all(self) -> None:
        """Leave no worker of this lab alive (teardown; a test's kills go through Worker.kill)."""
        for w in self.workers:
            if w.alive():
                w.kill()

    # -- questions asked by fresh processes ---------------------------------------------------
    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> CliResult:
        cmd = [PYTHON, "-m", "tracelake.jobs.cli", "--home", str(self.home), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env(env), cwd=str(self.root),
                              timeout=timeout)
        return CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)

    def reconcile(self, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        res = self.cli("audit", "reconcile", "--json", env=env)
        if res.returncode != 0:
            raise AssertionError(f"reconcile failed: {res}")
        return res.json()

    def verify(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        """``tracelake audit verify --json`` (exit 0 clean, 1 with problems; anything else is a crash)."""
        res = self.cli("audit", "verify", "--json", env=env)
        if res.returncode not in (0, 1):
            raise AssertionError(f"verify crashed: {res}")
        payload = res.json()
        assert payload["ok"] == (res.returncode == 0), res
        return payload

    def flush(self, env: dict[str, str] | None = None) -> CliResult:
        return self.cli("audit", "flush", "--json", env=env)

    def pending_records(self) -> int:
        """Records waiting in the journal (read straight from its SQLite file, read-only)."""
        con = sqlite3.connect(f"file:{self.home / '_journal' / 'journal.sqlite'}?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        finally:
            con.close()

    def table_versions(self) -> dict[str, int | None]:
        """Newest version of every data table (delta-rs, no Spark)."""
        from tracelake.lineage.record import delta_meta

        root = self.home / "tables"
        return {p.name: delta_meta.latest_version(str(p))
                for p in sorted(root.iterdir()) if (p / "_delta_log").is_dir()}

    def observe(self, env: dict[str, str] | None = None, verify: bool = False) -> dict[str, Any]:
        """The final state (records, tables at every version, Dagster, MLflow), read by a fresh
        process; ``verify``: that process also runs ``tracelake audit verify --json`` first (its
        answer under ``"verify"``) - one interpreter start instead of two."""
        cmd = [PYTHON, str(OBSERVER), str(self.home), str(self.dagster_home)] + (["--verify"] if verify else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env(env), cwd=str(self.root), timeout=600)
        if proc.returncode != 0:
            raise AssertionError(f"observation failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(proc.stdout)


class MountRefused(RuntimeError):
    """This machine does not let us mount a small disk (not root, no tmpfs, a container policy)."""


_mount_ok: bool | None = None
_mount_why = ""


def _run(*cmd: str) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise MountRefused(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()}")


class SmallDisk:
    """A tmpfs of ``size`` mounted over ``path`` (its current contents carried over)."""

    def __init__(self, path: Path, size: str = "16m"):
        self.path = Path(path)
        self.size = size
        self.mounted = False
        self.filler = self.path / ".crash-filler"

    @staticmethod
    def available(scratch: Path) -> tuple[bool, str]:
        """Can this machine mount a tmpfs (and remount it read-only)? Asked once per process."""
        global _mount_ok, _mount_why
        if _mount_ok is None:
            probe = Path(scratch) / "mount-probe"
            probe.mkdir(parents=True, exist_ok=True)
            try:
                _run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe))
                try:
                    _run("mount", "-o", "remount,ro", str(probe))
                finally:
                    _run("umount", str(probe))
                _mount_ok = True
            except (MountRefused, FileNotFoundError) as exc:
                _mount_ok, _mount_why = False, str(exc)
        return _mount_ok, _mount_why

    def mount(self) -> SmallDisk:
        aside = self.path.with_name(self.path.name + ".before-mount")
        had = self.path.exists()
        if had:
            self.path.rename(aside)
        self.path.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", str(self.path))
        self.mounted = True
        if had:
            shutil.copytree(aside, self.path, dirs_exist_ok=True, symlinks=True)
            shutil.rmtree(aside)
        return self

    def fill(self) -> int:
        """Take every free byte (the kernel's ENOSPC is the signal that it is full)."""
        written = 0
        with open(self.filler, "ab", buffering=0) as fh:
            for chunk in (1 << 20, 1 << 12, 1):
                block = b"\0" * chunk
                while True:
                    try:
                        written += fh.write(block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def read_only(self) -> None:
        _run("mount", "-o", "remount,ro", str(self.path))

    def read_write(self) -> None:
        _run("mount", "-o", "remount,rw", str(self.path))

    def unmount(self, keep_contents: bool = True) -> None:
        """Unmount, carrying the contents back to the folder underneath (so the lab stays whole)."""
        if not self.mounted:
            return
        subprocess.run(["mount", "-o", "remount,rw", str(self.path)], capture_output=True)
        self.free()
        saved = self.path.with_name(self.path.name + ".after-mount")
        if keep_contents:
            shutil.copytree(self.path, saved, symlinks=True)
        proc = subprocess.run(["umount", str(self.path)], capture_output=True, text=True)
        if proc.returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
        self.mounted = False
        if keep_contents:
            shutil.copytree(saved, self.path, dirs_exist_ok=True, symlinks=True)
            shutil.rmtree(saved)
