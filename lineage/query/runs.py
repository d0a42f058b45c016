"""Reading component runs back: list, filter, show one. Answered from the audit store with
delta-rs and pandas - no Spark session - so the CLI replies in about a second."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.openlineage.ids import find_by_openlineage_id, is_uuid
from tracelake.lineage.record.audit_tables import CHECK_RESULTS
from tracelake.lineage.record.runid import run_id_time

__all__ = ["RunNotFound", "get_run", "list_runs", "parse_when"]


class RunNotFound(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want a sentence
        return str(self.args[0])


def parse_when(text: str | None) -> datetime | None:
    """ISO date or datetime (UTC if no zone) -> aware datetime."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date or time; use ISO format like 2026-01-20 or 2026-01-20T06:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def list_runs(lake: Lakehouse, *, component: str | None = None, status: str | None = None,
              since: datetime | None = None, until: datetime | None = None,
              partition: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Runs, newest first, optionally filtered (started runs included)."""
    frame = lake.store.component_runs(include_open=True)
    if frame.empty:
        return frame
    if component is not None:
        known = set(frame["component"])
        if component not in known:
            raise RunNotFound(f"no runs of component {component!r}; components with runs: {', '.join(sorted(known))}")
        frame = frame[frame["component"] == component]
    if status is not None:
        frame = frame[frame["status"] == status]
    if partition is not None:
        frame = frame[frame["partition_key"] == partition]
    if since is not None:
        frame = frame[frame["started_at"] >= pd.Timestamp(since)]
    if until is not None:
        frame = frame[frame["started_at"] < pd.Timestamp(until)]
    frame = frame.sort_values("run_id", ascending=False)
    return frame.head(limit) if limit else frame


def get_run(lake: Lakehouse, run_id: str) -> dict[str, Any]:
    """Everything recorded about one run, plus its check results. ``run_id`` may also be the
    run's OpenLineage run id (a UUID, as a lineage backend shows it)."""
    frame = lake.store.component_runs(include_open=True)
    if is_uuid(run_id):
        recorded = frame["openlineage_run_id"] if "openlineage_run_id" in frame else [None] * len(frame)
        found = find_by_openlineage_id(zip(frame["run_id"], recorded, strict=True), run_id) if len(frame) else None
        if found is None:
            raise RunNotFound(f"no component run has OpenLineage run id {run_id} in {lake.settings.home}")
        run_id = found
    try:
        run_id_time(run_id)
    except ValueError as exc:
        raise RunNotFound(str(exc)) from None
    hit = frame[frame["run_id"] == run_id] if not frame.empty else frame
    if hit.empty:
        raise RunNotFound(f"no component run {run_id} in {lake.settings.home}; list runs with `tracelake runs`")
    record = _plain(hit.iloc[-1].to_dict())
    checks = lake.store.read(CHECK_RESULTS)
    record["checks"] = [_plain(r) for r in checks[checks["run_id"] == run_id].to_dict("records")] if not checks.empty else []
    record["config"] = json.loads(record.get("config_json") or "{}")
    return record


def _plain(value: Any) -> Any:
    """pandas/numpy/arrow values -> JSON-friendly Python."""
    import numpy as np

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if value != value else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NaT:
        return None
    return value
