"""Drift of any window, from stored profiles, and the root-cause view of a degraded window.

Windows: a day (``2026-01-16``), a range (``2026-01-10..2026-01-16``; an open end
``2026-01-10..`` runs to the newest profile), ``7d`` (the last seven profiled days, sliding) or
``cumulative`` (everything profiled). The current side is merged from stored hourly profiles,
never reread. The reference is profiled from its pinned version (``lineage``), or merged from
stored profiles too (``previous``, ``fixed:START..END``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tracelake.lineage import Lakehouse
from tracelake.lineage.layout import PARTITION_COLUMN, RESERVED_COLUMNS
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.query.review import changed_since_previous
from tracelake.lineage.query.trace import LineageWalker, trace
from tracelake.lineage.record.delta_meta import latest_version
from tracelake.monitors.drift.evidently_report import EvidentlyReport
from tracelake.monitors.drift.job import (
    DriftTarget,
    compute_drift,
    load_profiles,
    multivariate_row,
    reference_frame,
    run_evidently,
)
from tracelake.monitors.drift.profile_specs import load_spec
from tracelake.monitors.drift.profiles import ALL, merge
from tracelake.monitors.drift.references import Reference, days_between, resolve_reference
from tracelake.monitors.drift.statistics import DriftResult, compare_profiles

__all__ = [
    "PROFILES_TABLE",
    "DriftWindow",
    "WindowDrift",
    "default_report_dir",
    "drift_of_window",
    "explain_drift",
    "parse_window",
]

PROFILES_TABLE = "data_profiles"


@dataclass(frozen=True)
class DriftWindow:
    label: str
    days: tuple[str, ...]
    profiled: tuple[str, ...] = ()   # every day of the table that has profiles (read once, by parse_window)

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        start = datetime.fromisoformat(self.days[0]).replace(tzinfo=UTC)
        end = datetime.fromisoformat(self.days[-1]).replace(tzinfo=UTC) + timedelta(days=1)
        return start, end


def _profiled_days(lake: Lakehouse, table: str) -> list[str]:
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    path = lake.layout.table(PROFILES_TABLE)
    if latest_version(path) is None:
        return []
    days = DeltaTable(path).to_pyarrow_dataset().to_table(columns=["_tl_partition"],
                                                          filter=ds.field("table_name") == table)
    return sorted(set(days.column("_tl_partition").to_pylist()))


def parse_window(lake: Lakehouse, table: str, text: str) -> DriftWindow:
    profiled = _profiled_days(lake, table)
    if not profiled:
        raise LookupError(f"no profiles of {table} yet; run the daily_drift job (or `tracelake demo`) first")
    if text == "cumulative":
        return DriftWindow(text, tuple(profiled), tuple(profiled))
    if text.endswith("d") and text[:-1].isdigit():
        n = int(text[:-1])
        end = date.fromisoformat(profiled[-1])
        days = [(end - timedelta(days=n - 1 - i)).isoformat() for i in range(n)]
        return DriftWindow(f"{text} to {profiled[-1]}", tuple(days), tuple(profiled))
    try:
        if ".." in text:
            first, last = text.split("..", 1)
            return DriftWindow(text, tuple(days_between(first, last or profiled[-1])), tuple(profiled))
        date.fromisoformat(text)
        return DriftWindow(text, (text,), tuple(profiled))
    except ValueError as exc:
        raise ValueError(f"--window {text!r}: {exc}; use YYYY-MM-DD, START..END, START.., 7d or cumulative") from None


@dataclass
class WindowDrift:
    table: str
    window: DriftWindow
    reference: Reference
    results: list[DriftResult]
    report: EvidentlyReport | None = None
    notes: list[str] = field(default_factory=list)


def _read(lake: Lakehouse):
    """Rows of a table version as pandas, read with delta-rs: the drift query starts no JVM."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    def read(table: str, version: int | None, partitions: Sequence[str] | None):
        path = lake.layout.table(table)
        v = latest_version(path) if version is None else version
        if v is None:
            raise LookupError(f"table {table} does not exist at {path}")
        where = ds.field(PARTITION_COLUMN).isin(list(partitions)) if partitions else None
        frame = DeltaTable(path, version=v).to_pyarrow_dataset().to_table(filter=where).to_pandas()
        return frame.drop(columns=[c for c in RESERVED_COLUMNS if c in frame.columns])
    return read


def drift_of_window(lake: Lakehouse, target: DriftTarget, window: DriftWindow, reference: str = "lineage", *,
                    report_dir: str | None = None, sample_rows: int = 5000) -> WindowDrift:
    spec = load_spec(lake, target.table, target.columns)
    if spec is None:
        raise LookupError(f"{target.table} has no recorded profile bins for columns {', '.join(target.columns)}; "
                          "run the daily_drift job (re-materialise data_profiles) first")
    profiles_path = lake.layout.table(PROFILES_TABLE)
    current = load_profiles(profiles_path, target.table, spec, partitions=list(window.days))
    if not current:
        raise LookupError(f"no profiles of {target.table} in {window.label}; profiled days are listed by "
                          f"`tracelake sql \"SELECT DISTINCT _tl_partition FROM {PROFILES_TABLE}\"`")
    index = AuditIndex(lake)
    ref = resolve_reference(lake, index, target.table, list(window.days), reference)
    notes = []
    profiled = window.profiled or tuple(_profiled_days(lake, target.table))
    missing = sorted(set(window.days) - set(profiled))
    if missing:
        notes.append(f"days without profiles in the window: {', '.join(missing)}")
    read = _read(lake)
    ref_profiles = None
    if ref.kind == "lineage":
        ref_df = reference_frame(read, ref, target)
        results, ref_profiles = compute_drift(target, spec, current, ref_df)
    else:
        # Baselines of the same table come from stored profiles: nothing is reread.
        stored = load_profiles(profiles_path, target.table, spec, partitions=list(ref.partitions or ()))
        if not stored:
            raise LookupError(f"no profiles of {target.table} in the reference window {ref.description}")
        ref_profiles = merge(stored, window="all")
        results = compare_profiles(ref_profiles, merge(current, window="all"), spec, per_column=target.thresholds)
        ref_df = None
    out = WindowDrift(target.table, window, ref, results, notes=notes)
    if report_dir is not None:
        ref_rows = ref_df if ref_df is not None else read(target.table, None, list(ref.partitions or ()))
        cur_rows = read(target.table, None, list(window.days))
        name = f"{window.days[0]}_{window.days[-1]}_{ref.kind}"
        out.report = run_evidently(target, ref_rows, cur_rows, ref_profiles, current, report_dir, name,
                                   max_rows=sample_rows)
        multivariate = multivariate_row(target, out.report.samples)
        if multivariate is not None:
            out.results.append(multivariate)
    return out


def explain_drift(lake: Lakehouse, drift: WindowDrift, top_slices: int = 5) -> dict[str, Any]:
    """Root-cause view: drifted columns, the slices where drift concentrates (score weighted by
    the slice's share of rows), and upstream runs of the window with failed checks or changed
    code/config (from lineage)."""
    overall = {r.column: r for r in drift.results if r.slice_key == ALL}
    drifted = sorted((r for r in overall.values() if r.drifted), key=lambda r: -(r.score or 0))
    columns = [{"column": r.column, "method": r.method, "score": r.score, "threshold": r.threshold,
                "detail": r.detail} for r in drifted]
    slices = []
    for r in drift.results:
        # A column sliced by itself (zone within a zone) says nothing about where drift sits.
        if r.slice_key in (ALL, r.column) or not r.drifted or r.column not in {d.column for d in drifted}:
            continue
        total = overall[r.column].cur_rows or 1
        excess = (r.score or 0) - (overall[r.column].score or 0)
        if excess <= 0:
            continue
        # Concentration: how much worse than the whole column, weighted by the slice's share of rows.
        slices.append({"column": r.column, "slice": f"{r.slice_key}={r.slice_value}", "score": r.score,
                       "share_of_rows": r.cur_rows / total, "weight": excess * r.cur_rows / total,
                       "detail": r.detail})
    slices.sort(key=lambda s: -s["weight"])
    days = ", ".join("'" + d + "'" for d in drift.window.days)
    walker = LineageWalker(lake)
    result = trace(lake, drift.table, f"_tl_partition IN ({days})", walker=walker)
    upstream = []
    for node in sorted(result.runs(), key=lambda n: (n.depth, n.component or "")):
        changed = changed_since_previous(walker, node.id) if walker.index.has(node.id) else []
        failed = [f"{c['check']} ({c['severity']})" for c in (node.checks or [])]
        if changed or failed or node.status != "succeeded":
            upstream.append({"run_id": node.id, "component": node.component, "partition": node.partition_key,
                             "depth": node.depth, "status": node.status, "changed": changed,
                             "failed_checks": failed})
    return {"table": drift.table, "window": drift.window.label, "reference": drift.reference.description,
            "drifted_columns": columns, "slices": slices[:top_slices],
            "upstream_runs_inspected": len(result.runs()), "upstream_notable": upstream}


def default_report_dir(lake: Lakehouse, table: str) -> str:
    return str(lake.layout.local_reports_root() / "drift" / table / "cli")
