"""A drift run: declared targets, their profiles, a reference, full-data statistics, an
Evidently report, and one row per (column, slice) in the drift table.

Shared by the Dagster components (:mod:`tracelake.assets.drift`) and ``tracelake drift``, so a
window computed by hand is computed exactly as the schedule computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from tracelake.monitors.alerts.manager import AlertPolicy
from tracelake.monitors.drift.domain_classifier import domain_classifier_auc
from tracelake.monitors.drift.evidently_report import EvidentlyReport, evidently_drift, stratified_sample
from tracelake.monitors.drift.profile_specs import spec_for
from tracelake.monitors.drift.profiles import (
    ALL,
    Profile,
    ProfileSpec,
    derive_spec,
    from_rows,
    merge,
    profile_pandas,
    profile_spark,
    whole_window,
)
from tracelake.monitors.drift.references import Reference, ReferenceNotFound, resolve_reference
from tracelake.monitors.drift.statistics import DriftResult, DriftThresholds, compare_profiles

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = [
    "DRIFT_COLUMNS",
    "DriftTarget",
    "ReadFn",
    "compute_drift",
    "derive_target_spec",
    "drift_rows",
    "load_profiles",
    "multivariate_row",
    "observe_drift_alert",
    "profile_rows",
    "reference_frame",
    "run_evidently",
    "sample_pair",
    "summary",
    "target_spec",
]

ReadFn = Callable[[str, "int | None", "Sequence[str] | None"], "DataFrame"]   # (table, version, partitions)


@dataclass(frozen=True)
class DriftTarget:
    """A table whose drift is watched, declared once next to the pipeline.

    ``reference_columns`` maps a column to a SQL expression over the reference table, for when
    the reference names it differently. ``alert`` opens an alert when any of ``alert_columns``
    drifts overall; by default drift is stored, not paged (alerts are for SLA breaches).
    """

    table: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    time_column: str | None = None
    slices: tuple[str, ...] = ()
    granularity: str = "hour"
    bins: int = 256
    top_k: int = 50
    reference: str = "lineage"
    reference_columns: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, DriftThresholds] = field(default_factory=dict)
    alert: AlertPolicy | None = None
    alert_columns: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def reference_frame(read: ReadFn, ref: Reference, target: DriftTarget) -> Any:
    """The reference rows, with the target's columns (renamed per ``reference_columns``): a Spark
    DataFrame, or a pandas frame when ``read`` gives pandas (then only plain renames)."""
    df = read(ref.table, ref.version, list(ref.partitions) if ref.partitions else None)
    wanted = list(dict.fromkeys([*target.columns, *target.slices]))
    if isinstance(df, pd.DataFrame):
        plain = {target.reference_columns.get(c, c): c for c in wanted}
        unplain = [e for e in plain if not e.isidentifier()]
        if unplain:
            raise ValueError(f"reference column expressions {unplain} need Spark")
        return df[list(plain)].rename(columns=plain)
    exprs = [f"{target.reference_columns[c]} AS `{c}`" if c in target.reference_columns else f"`{c}`" for c in wanted]
    return df.selectExpr(*exprs)


def derive_target_spec(target: DriftTarget, reference: DataFrame, described: str,
                       sample_rows: int = 200_000) -> tuple[ProfileSpec, str]:
    """Bins from (a sample of) the first reference: the 0.1-99.9% range, equal width."""
    total = reference.count()
    if total == 0:
        raise ValueError(f"the reference for {target.table} ({described}) has no rows; cannot fix profile bins")
    sample = reference.sample(fraction=min(1.0, sample_rows / total), seed=3).toPandas()
    spec = derive_spec(sample, target.numeric, target.categorical, bins=target.bins, top_k=target.top_k,
                       time_column=target.time_column, granularity=target.granularity, slices=target.slices)
    return spec, described


def target_spec(lake: Any, index: Any, read: ReadFn, target: DriftTarget, window_days: list[str],
                current: DataFrame | None = None) -> ProfileSpec:
    """The table's recorded bins; the first time, derived from its reference (by lineage), or from
    the first data profiled when no model exists yet (said so in ``profile_specs.derived_from``)."""

    def derive() -> tuple[ProfileSpec, str]:
        try:
            ref = resolve_reference(lake, index, target.table, window_days, target.reference)
        except ReferenceNotFound as exc:
            if current is None:
                raise
            return derive_target_spec(target, current, f"{target.table} {','.join(window_days)} "
                                                       f"(first data profiled; no reference yet: {exc})")
        return derive_target_spec(target, reference_frame(read, ref, target), ref.description)

    return spec_for(lake, target.table, target.columns, derive)


def profile_rows(profiles_path: str, table: str, partitions: Sequence[str] | None = None,
                 extra: Any = None) -> pd.DataFrame:
    """Stored profile rows of ``table`` (delta-rs: small tables, no Spark), as pandas."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    where = ds.field("table_name") == table
    if partitions is not None:
        where = where & ds.field("_tl_partition").isin(list(partitions))
    if extra is not None:
        where = where & extra
    frame = DeltaTable(profiles_path).to_pyarrow_dataset().to_table(filter=where).to_pandas()
    return frame.drop(columns=[c for c in ("_tl_run_id", "_tl_partition") if c in frame.columns])


def load_profiles(profiles_path: str, table: str, spec: ProfileSpec, *,
                  start: datetime | None = None, end: datetime | None = None,
                  partitions: Sequence[str] | None = None) -> list[Profile]:
    """Stored profiles of ``table`` (optionally a time range or partitions); refuses mixed specs."""
    frame = profile_rows(profiles_path, table, partitions)
    if len(frame) and start is not None:
        frame = frame[frame["window_start"] >= pd.Timestamp(start)]
    if len(frame) and end is not None:
        frame = frame[frame["window_start"] < pd.Timestamp(end)]
    other = set(frame["spec_id"]) - {spec.spec_id} if len(frame) else set()
    if other:
        raise ValueError(f"profiles of {table} in this window were made with other bins ({', '.join(sorted(other))}); "
                         f"re-profile those partitions (re-materialise the profiles asset) before comparing")
    return from_rows(frame)


def compute_drift(target: DriftTarget, spec: ProfileSpec, current: Sequence[Profile],
                  reference: Any) -> tuple[list[DriftResult], list[Profile]]:
    """Full-data drift of the merged current window against the reference (profiled in one pass,
    in Spark for a Spark frame, in-process for a pandas one)."""
    ref_profiles = profile_pandas(reference, whole_window(spec)) if isinstance(reference, pd.DataFrame) \
        else profile_spark(reference, whole_window(spec))
    results = compare_profiles(ref_profiles, merge(current, window="all"), spec, per_column=target.thresholds)
    return results, ref_profiles


def _slice_counts(profiles: Sequence[Profile], column: str, slice_key: str) -> dict[str, int]:
    return {p.slice_value: p.count + p.nulls for p in profiles if p.column == column and p.slice_key == slice_key}


def sample_pair(target: DriftTarget, reference: DataFrame, current: DataFrame, ref_profiles: Sequence[Profile],
                cur_profiles: Sequence[Profile], max_rows: int = 5000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bounded, stratified samples of both sides (strata: the first slice column, counts from the
    profiles, so sampling costs no extra pass)."""
    strata = target.slices[0] if target.slices else None
    probe = target.columns[0]
    cols = list(dict.fromkeys([*target.columns, *target.slices]))
    ref = stratified_sample(reference, cols, strata, _slice_counts(ref_profiles, probe, strata) if strata else None,
                            max_rows=max_rows)
    cur_counts = _slice_counts(merge(cur_profiles, window="all"), probe, strata) if strata else None
    cur = stratified_sample(current, cols, strata, cur_counts, max_rows=max_rows)
    return ref[target.columns], cur[target.columns]


def run_evidently(target: DriftTarget, reference: DataFrame, current: DataFrame, ref_profiles: Sequence[Profile],
                  cur_profiles: Sequence[Profile], out_dir: str, name: str, max_rows: int = 5000) -> EvidentlyReport:
    """Evidently on stratified samples of both sides; the report is saved in ``out_dir``."""
    ref, cur = sample_pair(target, reference, current, ref_profiles, cur_profiles, max_rows)
    report = evidently_drift(ref, cur, out_dir, name)
    report.samples = (ref, cur)
    return report


def multivariate_row(target: DriftTarget, samples: tuple[pd.DataFrame, pd.DataFrame]) -> DriftResult | None:
    """The domain classifier's verdict as a drift result over all columns (None for one column)."""
    if len(target.columns) < 2:
        return None
    found = domain_classifier_auc(samples[0], samples[1], target.categorical)
    return DriftResult("(all columns)", "multivariate", ALL, ALL, found.reference_rows, found.current_rows,
                       method="domain_classifier_auc", score=found.auc, threshold=found.threshold,
                       drifted=found.drifted,
                       detail="gradient boosting told reference from current rows, 5-fold cross-validated AUC "
                              "on the report samples")


DRIFT_COLUMNS = [
    "table_name", "column_name", "kind", "slice_key", "slice_value", "window_start", "window_end",
    "reference_kind", "reference", "reference_table", "reference_version", "model", "ref_rows", "cur_rows",
    "psi", "js", "wasserstein", "wasserstein_norm", "wasserstein_bound", "ks", "ks_bound", "ks_pvalue",
    "chi2", "chi2_pvalue", "mean_ref", "mean_cur", "null_rate_ref", "null_rate_cur", "method", "score",
    "threshold", "drifted", "evidently_method", "evidently_score", "evidently_threshold", "evidently_drifted",
    "verdicts_agree", "detail", "report_html", "report_json", "computed_at",
]


def drift_rows(target: DriftTarget, results: Sequence[DriftResult], ref: Reference, window: tuple[datetime, datetime],
               report: EvidentlyReport | None, report_error: str | None = None) -> pd.DataFrame:
    """One row per (column, slice); Evidently's verdict sits on the whole-table rows."""
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for r in results:
        row = {k: v for k, v in r.as_dict().items() if k not in ("column",)}
        row.update({"table_name": target.table, "column_name": r.column, "window_start": window[0],
                    "window_end": window[1], "reference_kind": ref.kind, "reference": ref.description,
                    "reference_table": ref.table, "reference_version": ref.version, "model": ref.model,
                    "computed_at": now, "report_html": report.html_path if report else None,
                    "report_json": report.json_path if report else None})
        verdict = report.verdicts.get(r.column) if report and r.slice_key == ALL else None
        if verdict is not None:
            row.update({"evidently_method": verdict.method, "evidently_score": verdict.score,
                        "evidently_threshold": verdict.threshold, "evidently_drifted": verdict.drifted,
                        "verdicts_agree": None if r.drifted is None else verdict.drifted == r.drifted})
            if row["verdicts_agree"] is False and report is not None:
                row["detail"] = "; ".join(filter(None, [row["detail"], (
                    f"Evidently ({verdict.method} on a {report.current_rows}-row sample) says "
                    f"{'drift' if verdict.drifted else 'no drift'}; full data says {'drift' if r.drifted else 'no drift'}")]))
        elif report_error and r.slice_key == ALL:
            row["detail"] = "; ".join(filter(None, [row["detail"], f"Evidently report failed: {report_error}"]))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in DRIFT_COLUMNS:
        if col not in frame:
            frame[col] = None
    return frame[DRIFT_COLUMNS]


def observe_drift_alert(manager: Any, target: DriftTarget, results: Sequence[DriftResult], day: str,
                        when: datetime) -> str | None:
    """Feed the target's alert policy (if it declares one) with today's verdict on its declared
    columns; returns what the alert did (``opened``, ``repeated``, ``resolved`` ...) or None."""
    if target.alert is None:
        return None
    hit = [c for c in summary(results)["drifted_columns"] if c in target.alert_columns]
    message = (f"drift in {target.table} on {day}: {', '.join(hit)}" if hit
               else f"no drift in the declared columns of {target.table} on {day}")
    return manager.observe(target.alert, target.table, bool(hit), message, when=when)


def summary(results: Sequence[DriftResult]) -> dict[str, Any]:
    overall = [r for r in results if r.slice_key == ALL and r.kind != "multivariate"]
    drifted = sorted(r.column for r in overall if r.drifted)
    slices = sorted({f"{r.column}[{r.slice_key}={r.slice_value}]" for r in results if r.slice_key != ALL and r.drifted})
    return {"columns": len(overall), "drifted_columns": drifted, "drifted_slices": slices,
            "max_score": max((r.score for r in overall if r.score is not None), default=None)}
