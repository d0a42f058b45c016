"""What a lakehouse says after a crash, and whether it says exactly what happened.

``observe(home, dagster_home)`` reads the final state the way an auditor would, with no Spark:
every audit record (Delta rows and the journal's tail), the open markers, every data table at
*every* version with delta-rs (and its commits), the Dagster runs and the MLflow runs. It runs in
a fresh process (``python crash_checks.py HOME DAGSTER_HOME`` prints it as JSON), so nothing of
the process that crashed - nor of the test - is in memory.

``judge(observation, started, expect, verify)`` compares all of it with each other and with what
happened, and sorts every disagreement into the figures ``benchmarks/crash_consistency.py``
prints (each must be 0):

- ``records_lost``: a run that started (the worker's durable log says so) has no final record;
- ``records_duplicated``: a run with more than one final record, an audit position written twice
  to Delta, a run with two MLflow runs, or a run rolled back by more than one commit;
- ``false_successes``: a record ``succeeded`` that should not be (killed before its final record,
  a concurrent loser), or whose commit is missing or names another run; a Dagster run SUCCESS or
  an MLflow run FINISHED for a run that did not succeed;
- ``failed_rows_visible``: rows of a failed or abandoned run in the newest version of a table, or
  a partition whose newest rows are not exactly those of the newest run that succeeded on it;
- ``rollback_unrecorded``: a failed or abandoned run whose commit landed and was rolled back,
  without the rollback commit's version in its record;
- ``unreadable_versions``: a version of a data table delta-rs cannot read;
- ``left_running``: a Dagster run still in progress, an MLflow run still RUNNING, an open marker
  after reconciliation;
- ``status_mismatch``: Dagster or MLflow says something else than the record;
- ``false_tamper_alarms``: ``audit verify`` reports a problem although nothing was tampered with;
- ``root_cause_missing``: an error that was expected to name its root cause first does not.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FIGURES", "Expect", "judge", "observe", "records_by_run"]

FIGURES = ("records_lost", "records_duplicated", "false_successes", "failed_rows_visible", "rollback_unrecorded",
           "unreadable_versions", "left_running", "status_mismatch", "false_tamper_alarms", "root_cause_missing")

_IN_PROGRESS = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}
_MLFLOW = {"succeeded": {"FINISHED"}, "failed": {"FAILED"}, "abandoned": {"KILLED"}, "skipped": {"KILLED"}}


# -- observing (in a fresh process) ---------------------------------------------------------------
def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


_RECORD_FIELDS = ("run_id", "status", "component", "partition_key", "output_table", "output_version", "output_rows",
                  "rolled_back_version", "error_type", "error_message", "dagster_run_id", "mlflow_run_id",
                  "write_mode", "journal_id", "chain_seq", "pid", "quarantine_version", "content_digest")


def observe(home: str, dagster_home: str | None = None) -> dict[str, Any]:
    from deltalake import DeltaTable

    from tracelake.lineage import open_lakehouse
    from tracelake.lineage.layout import PARTITION_COLUMN, RUN_ID_COLUMN
    from tracelake.lineage.query.sql import data_tables
    from tracelake.lineage.record import delta_meta
    from tracelake.lineage.record.audit_tables import COMPONENT_RUNS

    lake = open_lakehouse(home, must_exist=True)
    frame = lake.store.read(COMPONENT_RUNS)
    records = [{k: _plain(r.get(k)) for k in _RECORD_FIELDS} for r in frame.to_dict("records")]
    duplicates = {}
    for table in lake.store.tables():
        data = lake.store.read_delta(table)
        if len(data):
            positions = set(zip(data.column("journal_id").to_pylist(), data.column("chain_seq").to_pylist(),
                                strict=True))
            duplicates[table] = len(data) - len(positions)
    tables: dict[str, Any] = {}
    for name, path in data_tables(lake).items():
        oldest, latest = delta_meta.oldest_readable_version(path), delta_meta.latest_version(path)
        info: dict[str, Any] = {"path": path, "oldest": oldest, "latest": latest, "unreadable": [], "commits": {},
                                "latest_rows": [], "retention": {}}
        tables[name] = info
        if latest is None:
            continue
        for version in range(oldest or 0, latest + 1):
            try:
                commit = delta_meta.read_commit(path, version)
                meta = commit.user_metadata
                info["commits"][str(version)] = {"run_id": commit.run_id, "operation": commit.info.get("operation"),
                                                 "rollback_of": meta.get("tracelake_rollback_of"),
                                                 "rows_added": commit.rows_added}
                DeltaTable(path, version=version).to_pyarrow_table()
            except Exception as exc:  # exactly what this observation is for
                info["unreadable"].append({"version": version, "error": f"{type(exc).__name__}: {exc}"[:300]})
        dt = DeltaTable(path)
        config = dt.metadata().configuration
        info["retention"] = {"log": config.get("delta.logRetentionDuration"),
                             "file": config.get("delta.deletedFileRetentionDuration")}
        names = {f.name for f in dt.schema().fields}
        columns = [c for c in (PARTITION_COLUMN, RUN_ID_COLUMN) if c in names]
        info["partitioned"] = PARTITION_COLUMN in names
        counts: dict[tuple, int] = {}
        if columns:
            data = dt.to_pyarrow_table(columns=columns).to_pylist()
            for row in data:
                key = (row.get(PARTITION_COLUMN), row.get(RUN_ID_COLUMN))
                counts[key] = counts.get(key, 0) + 1
        info["latest_rows"] = [{"partition": p, "run_id": r, "rows": n}
                               for (p, r), n in sorted(counts.items(), key=str)]
    return {
        "home": home,
        "records": records,
        "open": [o.run_id for o in lake.journal.open_runs()],
        "pending_journal_records": lake.journal.pending_stats()[0],
        "audit_position_duplicates": duplicates,
        "tables": tables,
        "dagster": _dagster_runs(dagster_home) if dagster_home else {},
        "mlflow": _mlflow_runs(lake),
    }


def _dagster_runs(dagster_home: str) -> dict[str, dict[str, Any]]:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(dagster_home))
    try:
        out = {}
        for run in instance.get_runs():
            failure = None
            if run.status == dg.DagsterRunStatus.FAILURE:
                events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
                failure = events[-1].message if events else None
            out[run.run_id] = {"status": run.status.value, "failure": failure}
        return out
    finally:
        instance.dispose()


def _mlflow_runs(lake: Any) -> dict[str, list[str]]:
    link = lake.mlflow
    client = link.client
    exps = [e.experiment_id for e in client.search_experiments(filter_string=f"name LIKE '{link.prefix}/%'")]
    out: dict[str, list[str]] = {}
    if not exps:
        return out
    for run in client.search_runs(exps, max_results=50000):
        rid = run.data.tags.get("tracelake.run_id")
        if rid:
            out.setdefault(rid, []).append(run.info.status)
    return out


# -- judging (pure) -------------------------------------------------------------------------------
@dataclass
class Expect:
    """What must be true of one run, from what the test did to it."""

    statuses: set[str]                       # allowed final statuses
    landed: bool | None = None               # its output commit landed (None: either)
    error_first: str | None = None           # its error message must start with this
    error_type: str | None = None            # ... and have this type (suffix match)
    note: str = ""


def records_by_run(observation: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in observation["records"]:
        out.setdefault(rec["run_id"], []).append(rec)
    return out


def judge(observation: dict[str, Any], started: Iterable[str], expect: dict[str, Expect] | None = None,
          verify: dict[str, Any] | None = None, tampered: bool = False) -> dict[str, list[str]]:
    """Every disagreement, by figure (see the module docstring); empty lists when all is well."""
    found: dict[str, list[str]] = {name: [] for name in FIGURES}
    expect = expect or {}
    by_run = records_by_run(observation)
    tables = observation["tables"]
    # Records: one per run that started, none still open.
    for run_id in started:
        if run_id not in by_run:
            where = "still open" if run_id in observation["open"] else "no record at all"
            found["records_lost" if run_id not in observation["open"] else "left_running"].append(
                f"run {run_id} started but has no final record ({where})")
    for run_id in observation["open"]:
        if run_id not in set(started):
            found["left_running"].append(f"run {run_id} is still open after reconciliation")
    for run_id, recs in by_run.items():
        if len(recs) > 1:
            found["records_duplicated"].append(f"run {run_id} has {len(recs)} final records "
                                               f"({', '.join(r['status'] for r in recs)})")
    for table, n in observation["audit_position_duplicates"].items():
        if n:
            found["records_duplicated"].append(f"audit table {table}: {n} chain positions written twice to Delta")
    for run_id, statuses in observation["mlflow"].items():
        if len(statuses) > 1:
            found["records_duplicated"].append(f"run {run_id} has {len(statuses)} MLflow runs")
    # Each record against what happened and against the tables.
    for run_id, recs in by_run.items():
        rec = recs[-1]
        status = rec["status"]
        want = expect.get(run_id)
        if want is not None:
            if status not in want.statuses:
                bucket = "false_successes" if status == "succeeded" else "status_mismatch"
                found[bucket].append(f"run {run_id} ({want.note}) is {status}, expected {sorted(want.statuses)}")
            if want.error_first and not (rec["error_message"] or "").startswith(want.error_first):
                found["root_cause_missing"].append(f"run {run_id} ({want.note}): error does not start with "
                                                   f"{want.error_first!r}: {rec['error_message']!r}")
            if want.error_type and not (rec["error_type"] or "").endswith(want.error_type):
                found["status_mismatch"].append(f"run {run_id} ({want.note}): error type {rec['error_type']}, "
                                                f"expected {want.error_type}")
            if want.landed is not None and (rec["output_version"] is not None) != want.landed:
                found["status_mismatch"].append(f"run {run_id} ({want.note}): output version "
                                                f"{rec['output_version']}, expected "
                                                f"{'a' if want.landed else 'no'} landed commit")
        table = tables.get(rec["output_table"] or "")
        version = rec["output_version"]
        if status == "succeeded":
            commit = table["commits"].get(str(version)) if table and version is not None else None
            if commit is None or commit["run_id"] != run_id:
                found["false_successes"].append(f"run {run_id} succeeded but {rec['output_table']}@v{version} "
                                                + ("does not exist" if commit is None else f"names {commit['run_id']}"))
        if status in ("failed", "abandoned") and table is not None:
            visible = sum(r["rows"] for r in table["latest_rows"] if r["run_id"] == run_id)
            if visible:
                found["failed_rows_visible"].append(f"{rec['output_table']}: {visible} rows of {status} run {run_id} "
                                                    "are in the newest version")
            landed = version is not None or any(c["run_id"] == run_id for c in table["commits"].values())
            rollbacks = [int(v) for v, c in table["commits"].items() if c["rollback_of"] == run_id]
            if landed and rollbacks:
                if rec["rolled_back_version"] is None or int(rec["rolled_back_version"]) not in rollbacks:
                    found["rollback_unrecorded"].append(
                        f"run {run_id} ({status}) was rolled back at {rollbacks}; its record says "
                        f"rolled_back_version={rec['rolled_back_version']}")
    # Tables: newest rows of each partition are exactly those of its newest succeeded writer.
    newest: dict[tuple[str, Any], dict[str, Any]] = {}
    for recs in by_run.values():
        rec = recs[-1]
        if rec["status"] != "succeeded" or rec["output_version"] is None:
            continue
        table = tables.get(rec["output_table"] or "")
        if table is None:
            continue
        key = (rec["output_table"], rec["partition_key"] if table.get("partitioned") else None)
        if key not in newest or rec["output_version"] > newest[key]["output_version"]:
            newest[key] = rec
    for name, table in tables.items():
        parts: dict[Any, dict[str, int]] = {}
        for row in table["latest_rows"]:
            parts.setdefault(row["partition"], {})[row["run_id"]] = row["rows"]
        for partition, owners in parts.items():
            owner = newest.get((name, partition))
            if owner is None:
                if not name.endswith(("__rejected", "__quarantine")):
                    found["failed_rows_visible"].append(f"{name} partition {partition}: rows of {sorted(owners)} but "
                                                        "no run that succeeded wrote it")
                continue
            if set(owners) != {owner["run_id"]} or (owner["output_rows"] is not None
                                                    and owners[owner["run_id"]] != owner["output_rows"]):
                found["failed_rows_visible"].append(
                    f"{name} partition {partition}: newest rows come from {owners}, expected exactly "
                    f"{owner['output_rows']} rows of run {owner['run_id']}")
        undone: dict[str, list[str]] = {}
        for version, commit in table["commits"].items():
            if commit["rollback_of"]:
                undone.setdefault(commit["rollback_of"], []).append(version)
        for run_id, versions in undone.items():
            if len(versions) > 1:
                found["records_duplicated"].append(f"{name}: run {run_id} was rolled back {len(versions)} times "
                                                   f"(versions {', '.join(versions)})")
        for bad in table["unreadable"]:
            found["unreadable_versions"].append(f"{name}@v{bad['version']}: {bad['error']}")
    # Dagster and MLflow against the record.
    by_dagster: dict[str, list[dict[str, Any]]] = {}
    for recs in by_run.values():
        if recs[-1]["dagster_run_id"]:
            by_dagster.setdefault(recs[-1]["dagster_run_id"], []).append(recs[-1])
    for dagster_id, run in observation["dagster"].items():
        if run["status"] in _IN_PROGRESS:
            found["left_running"].append(f"Dagster run {dagster_id} is still {run['status']}")
        recs = by_dagster.get(dagster_id, [])
        if run["status"] == "SUCCESS" and any(r["status"] not in ("succeeded", "skipped") for r in recs):
            found["false_successes"].append(f"Dagster run {dagster_id} SUCCESS but its component run(s) are "
                                            f"{[r['status'] for r in recs]}")
    for recs in by_run.values():
        rec = recs[-1]
        dagster = observation["dagster"].get(rec["dagster_run_id"] or "")
        if dagster and rec["status"] in ("failed", "abandoned") and dagster["status"] not in ("FAILURE", "CANCELED"):
            found["status_mismatch"].append(f"run {rec['run_id']} is {rec['status']}; "
                                            f"its Dagster run is {dagster['status']}")
        for status in observation["mlflow"].get(rec["run_id"], []):
            if status == "RUNNING":
                found["left_running"].append(f"MLflow run of {rec['run_id']} ({rec['status']}) is still RUNNING")
            elif status not in _MLFLOW.get(rec["status"], set()):
                bucket = "false_successes" if status == "FINISHED" else "status_mismatch"
                found[bucket].append(f"MLflow run of {rec['run_id']} is {status}; the record says {rec['status']}")
    if verify is not None and not tampered and not verify["ok"]:
        found["false_tamper_alarms"] += [f"audit verify: {p}" for p in verify["problems"]]
    return found


def summary(found: dict[str, list[str]]) -> str:
    lines = [f"{name}: {len(items)}" + "".join(f"\n    - {i}" for i in items) for name, items in found.items() if items]
    return "\n".join(lines) or "all figures 0"


@dataclass
class Tally:
    """Figures summed over scenarios (the benchmark's table)."""

    kills: dict[str, int] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIGURES, 0))
    details: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in FIGURES})

    def add(self, scenario: str, found: dict[str, list[str]]) -> None:
        for name, items in found.items():
            self.figures[name] += len(items)
            self.details[name] += [f"[{scenario}] {i}" for i in items]


def verify_by_cli(home: str) -> dict[str, Any]:
    """``tracelake --home HOME audit verify --json``, run by the CLI's own ``main`` in this process."""
    import contextlib
    import io

    from tracelake.jobs.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--home", home, "audit", "verify", "--json"])
    payload = json.loads(out.getvalue())
    if code not in (0, 1) or payload["ok"] != (code == 0):
        raise RuntimeError(f"audit verify exited {code}: {out.getvalue()[-2000:]}")
    return payload


if __name__ == "__main__":
    # python crash_checks.py HOME DAGSTER_HOME [--verify]: the observation (and audit verify's
    # answer, under "verify") as JSON, from a process that has nothing of the crash in memory.
    args = [a for a in sys.argv[1:] if a != "--verify"]
    verified = verify_by_cli(args[0]) if "--verify" in sys.argv else None
    seen = observe(args[0], args[1] if len(args) > 1 else None)
    if verified is not None:
        seen["verify"] = verified
    print(json.dumps(seen, default=str))
