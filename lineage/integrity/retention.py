"""Keeping history readable for years: guarded VACUUM and the retention verification job.

Delta's defaults (30 days of log, 7 days of removed files) make old versions unreadable within
a month (delta#1728, delta#616). Every table Tracelake creates carries the retention setting
(default 7 years) in ``delta.logRetentionDuration`` and ``delta.deletedFileRetentionDuration``;
``vacuum`` refuses any horizon shorter than that; ``verify_retention`` reads the oldest retained
version of every table and checks it against what the audit recorded at write time (rows,
schema hash, file digest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.layout import RUN_ID_COLUMN
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.query.sql import data_tables
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.audit_tables import RETENTION_CHECKS
from tracelake.lineage.record.runid import new_run_id

__all__ = ["RetentionError", "RetentionResult", "interval_days", "table_retention", "vacuum", "verify_retention"]

_INTERVAL = re.compile(r"^\s*interval\s+(\d+)\s+(day|days|hour|hours|week|weeks)\s*$", re.I)


class RetentionError(ValueError):
    """A request that would make recorded history unreadable."""


def interval_days(text: str | None) -> float | None:
    """'interval 2555 days' -> 2555.0; None when unset (Delta's default then applies)."""
    if not text:
        return None
    m = _INTERVAL.match(text)
    if not m:
        raise RetentionError(f"cannot read retention interval {text!r}")
    value, unit = int(m.group(1)), m.group(2).lower()
    return value / 24 if unit.startswith("hour") else value * 7 if unit.startswith("week") else float(value)


def table_retention(path: str) -> dict[str, float | None]:
    config = DeltaTable(path).metadata().configuration
    return {"log_days": interval_days(config.get("delta.logRetentionDuration")),
            "file_days": interval_days(config.get("delta.deletedFileRetentionDuration"))}


def _all_tables(lake: Lakehouse) -> dict[str, tuple[str, str]]:
    tables = {name: (path, "data") for name, path in data_tables(lake).items()}
    for name in lake.store.tables():
        path = lake.store.path(name)
        if DeltaTable.is_deltatable(path):
            tables[f"audit.{name}"] = (path, "audit")
    return tables


def vacuum(lake: Lakehouse, *, table: str | None = None, retain_days: float | None = None,
           dry_run: bool = True, reason: str | None = None) -> list[dict[str, Any]]:
    """VACUUM through the guard: never below the configured horizon, never on a table whose own
    retention properties were shortened. ``dry_run`` (the default) lists what would go.

    A real run deletes files outside any pipeline run, so it is an administrative action: it is
    recorded in ``admin_actions`` (started, then succeeded or failed) with ``reason``. Every table
    is checked before anything is deleted, so a refusal never leaves a half-vacuumed lakehouse.
    """
    horizon = float(lake.settings.retention_days)
    retain = horizon if retain_days is None else float(retain_days)
    if retain < horizon:
        raise RetentionError(
            f"refusing to vacuum with a {retain:g}-day horizon: history must stay readable for "
            f"{horizon:g} days (TRACELAKE_RETENTION_DAYS); old versions would become unreadable")
    tables = _all_tables(lake)
    if table is not None:
        key = table if table in tables else f"audit.{table}" if f"audit.{table}" in tables else None
        if key is None:
            raise RetentionError(f"no table {table!r} in {lake.settings.home}")
        tables = {key: tables[key]}
    for name, (path, _) in sorted(tables.items()):
        kept = table_retention(path)
        for what, days in (("log", kept["log_days"]), ("removed-file", kept["file_days"])):
            if days is None or days < horizon:
                raise RetentionError(
                    f"refusing to vacuum {name}: its {what} retention is {days if days is not None else 'the Delta default'}"
                    f" days, below the {horizon:g}-day horizon; restore the table property first")
    if dry_run:
        return _vacuum_tables(tables, retain, dry_run=True)
    from tracelake.lineage.query.admin import admin_action

    statement = f"vacuum {table or 'every table'} retaining {retain:g} days"
    with admin_action(lake, "vacuum", statement, reason=reason):
        return _vacuum_tables(tables, retain, dry_run=False)


def _vacuum_tables(tables: dict[str, tuple[str, str]], retain: float, *, dry_run: bool) -> list[dict[str, Any]]:
    out = []
    for name, (path, _) in sorted(tables.items()):
        removed = DeltaTable(path).vacuum(retention_hours=int(retain * 24), dry_run=dry_run,
                                          enforce_retention_duration=True)
        out.append({"table": name, "retain_days": retain, "dry_run": dry_run, "files": len(removed)})
    return out


@dataclass
class RetentionResult:
    table: str
    path: str
    kind: str
    oldest_version: int | None
    latest_version: int | None
    run_id: str | None = None
    problems: list[str] = field(default_factory=list)
    log_retention: str | None = None
    file_retention: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_table(res: RetentionResult, index: AuditIndex, horizon: float) -> None:
    """One table's retention proof, filled into ``res``."""
    path, kind = res.path, res.kind
    config = DeltaTable(path).metadata().configuration
    res.latest_version = delta_meta.latest_version(path)
    res.log_retention = config.get("delta.logRetentionDuration")
    res.file_retention = config.get("delta.deletedFileRetentionDuration")
    for what, key in (("log", "delta.logRetentionDuration"), ("removed-file", "delta.deletedFileRetentionDuration")):
        days = interval_days(config.get(key))
        if days is None or days < horizon:
            res.problems.append(f"{what} retention is {config.get(key) or 'the Delta default'}, "
                                f"below the {horizon:g}-day horizon")
    oldest = delta_meta.oldest_readable_version(path)
    res.oldest_version = oldest
    rec, quarantine, expected = None, False, None
    if kind == "data":
        commit = delta_meta.read_commit(path, oldest)
        res.run_id = commit.user_metadata.get("tracelake_run_id")
        quarantine = bool(commit.user_metadata.get("quarantine"))
        if res.run_id and index.has(res.run_id):
            rec = index.record(res.run_id)
            if quarantine:
                # The run's quarantine commit: only its row count was recorded.
                expected = rec.get("quarantined_rows")
                rec = None
            elif rec.get("output_version") != oldest:
                rec = None
        elif res.run_id and not res.run_id.startswith("plain-"):
            res.problems.append(f"v{oldest} was written by run {res.run_id}, which has no audit record")
        if rec is not None:
            # File digest first: it needs only the log and the bytes, so it still speaks when
            # a tampered file no longer even parses.
            if rec.get("content_digest") and delta_meta.files_digest(path, commit) != rec["content_digest"]:
                res.problems.append(f"v{oldest} files differ from the digest recorded at write time")
            schema_hash, _ = delta_meta.schema_fingerprint(delta_meta.schema_at(path, oldest))
            if rec.get("output_schema_hash") and schema_hash != rec["output_schema_hash"]:
                res.problems.append(f"v{oldest} schema hash differs from the one recorded at write time")
    try:
        table_at = DeltaTable(path, version=oldest)
        # A table written outside Tracelake (an external run received over OpenLineage) has no run-id column.
        own = kind == "data" and RUN_ID_COLUMN in {f.name for f in table_at.schema().fields}
        data = table_at.to_pyarrow_table(columns=[RUN_ID_COLUMN] if own else None)
    except (OSError, DeltaError) as exc:  # unreadable old history is exactly what this job reports
        res.problems.append(f"oldest version v{oldest} is unreadable: {str(exc).splitlines()[0][:200]}")
        return
    if kind == "data" and quarantine and res.run_id and index.has(res.run_id) and expected is not None:
        rows = int(pc.sum(pc.equal(data.column(RUN_ID_COLUMN), res.run_id)).as_py() or 0)
        if rows != expected:
            res.problems.append(f"v{oldest} holds {rows} quarantined rows of run {res.run_id}; the audit recorded {expected}")
    if rec is not None and rec.get("output_rows") is not None:
        rows = int(pc.sum(pc.equal(data.column(RUN_ID_COLUMN), res.run_id)).as_py() or 0)
        if rows != rec["output_rows"]:
            res.problems.append(f"v{oldest} holds {rows} rows of run {res.run_id}; the audit recorded {rec['output_rows']}")


def verify_retention(lake: Lakehouse, *, record: bool = True) -> list[RetentionResult]:
    """Read the oldest retained version of every table and compare it with the audit record.

    A version that can no longer be read (a vacuumed file, a missing log entry) is exactly what
    this job exists to find: it becomes a problem on that table's result, is recorded, and the
    remaining tables are still checked - never a crash.
    """
    index = AuditIndex(lake)
    horizon = float(lake.settings.retention_days)
    results = []
    for name, (path, kind) in sorted(_all_tables(lake).items()):
        res = RetentionResult(name, path, kind, None, None)
        try:
            _check_table(res, index, horizon)
        except (OSError, DeltaError, ValueError, KeyError) as exc:
            res.problems.append(f"history of v{res.oldest_version if res.oldest_version is not None else '?'} "
                                f"cannot be read: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        results.append(res)
    if record:
        now = datetime.now(UTC)
        lake.journal.append_many(RETENTION_CHECKS, [(cid, {
            "check_id": cid, "table_name": r.table, "table_path": r.path, "kind": r.kind,
            "oldest_version": r.oldest_version, "latest_version": r.latest_version, "run_id": r.run_id,
            "ok": r.ok, "problems": r.problems, "log_retention": r.log_retention, "file_retention": r.file_retention,
            "checked_at": now}) for cid, r in ((new_run_id(), r) for r in results)])
    return results
