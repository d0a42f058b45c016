"""Daily drift of the reference pipeline: profiles of the day's data, then drift against the
reference chosen by lineage, with an Evidently report per table.

``data_profiles`` profiles each watched table's new partition (hourly windows, per zone and
payment type) into mergeable histograms; ``data_drift`` merges the day, compares it with the
training set@version of the model that scored it (predictions: with that model's first scored
day; labels: with the training labels), and stores one row per column and slice. Drift is
stored, not paged: only a target with an ``alert`` policy opens alerts (the
alert-fatigue rule; SLAs on recall are what page).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tracelake.lineage import ComponentRun, LakehouseResource, MissingInputError, component
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.record.redact import scrub_text
from tracelake.monitors.alerts.channels import AlertChannelsResource
from tracelake.monitors.alerts.manager import AlertManager
from tracelake.monitors.drift.job import (
    DRIFT_COLUMNS,
    DriftTarget,
    compute_drift,
    drift_rows,
    multivariate_row,
    observe_drift_alert,
    reference_frame,
    run_evidently,
    summary,
    target_spec,
)
from tracelake.monitors.drift.profiles import from_rows, profile_spark, to_rows
from tracelake.monitors.drift.references import resolve_reference

from .features import NUMERIC_FEATURES
from .frames import spark_frame
from .partitions import daily

__all__ = ["DRIFT_SCHEMA", "DRIFT_TARGETS", "PROFILE_SCHEMA", "DriftConfig", "data_drift", "data_profiles"]

_SLICES = ("pickup_zone", "payment_type")
# Calendar features differ between one day and a two-week reference by construction: not watched.
_CALENDAR = ("day_of_week", "is_weekend")

# What is watched. Features and predictions by hour and slice; labels (label shift) per day.
DRIFT_TARGETS = (
    DriftTarget("trip_features", numeric=tuple(c for c in NUMERIC_FEATURES if c not in _CALENDAR), categorical=_SLICES,
                time_column="pickup_ts",
                slices=_SLICES),
    DriftTarget("tip_predictions", numeric=("tip_probability",), categorical=("predicted_tip",),
                time_column="pickup_ts", slices=_SLICES),
    DriftTarget("trip_labels", categorical=("tipped",), granularity="all"),
)

PROFILE_SCHEMA = T.StructType([
    T.StructField("table_name", T.StringType(), False), T.StructField("column_name", T.StringType(), False),
    T.StructField("kind", T.StringType(), False), T.StructField("granularity", T.StringType(), False),
    T.StructField("window_start", T.TimestampType(), True), T.StructField("window_end", T.TimestampType(), True),
    T.StructField("slice_key", T.StringType(), False), T.StructField("slice_value", T.StringType(), False),
    T.StructField("spec_id", T.StringType(), False), T.StructField("count", T.LongType(), False),
    T.StructField("nulls", T.LongType(), False), T.StructField("sum", T.DoubleType(), True),
    T.StructField("sum_sq", T.DoubleType(), True), T.StructField("min", T.DoubleType(), True),
    T.StructField("max", T.DoubleType(), True), T.StructField("hist", T.ArrayType(T.LongType()), True),
    T.StructField("categories", T.StringType(), True), T.StructField("other", T.LongType(), True),
    T.StructField("center", T.DoubleType(), True), T.StructField("source_version", T.LongType(), True),
])

_TYPES = {"window_start": T.TimestampType(), "window_end": T.TimestampType(), "computed_at": T.TimestampType(),
          "drifted": T.BooleanType(), "evidently_drifted": T.BooleanType(), "verdicts_agree": T.BooleanType(),
          "ref_rows": T.LongType(), "cur_rows": T.LongType(), "reference_version": T.LongType()}
_TEXT = {"table_name", "column_name", "kind", "slice_key", "slice_value", "reference_kind", "reference",
         "reference_table", "model", "method", "evidently_method", "detail", "report_html", "report_json"}
DRIFT_SCHEMA = T.StructType([
    T.StructField(c, _TYPES.get(c, T.StringType() if c in _TEXT else T.DoubleType()), True) for c in DRIFT_COLUMNS
])


class DriftConfig(dg.Config):
    reference: str = "lineage"   # or "previous", or "fixed:YYYY-MM-DD..YYYY-MM-DD"
    sample_rows: int = 5000      # per side, for the Evidently report


def _read_day(run: ComponentRun, table: str, day: str) -> DataFrame | None:
    """The day's partition of a watched table, or None when that table has none (yet)."""
    try:
        return run.read_table(table, partitions=[day])
    except MissingInputError as exc:
        run.set_tag(f"tracelake.drift.{table}", f"not profiled: {exc}")
        return None


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Row-bind frames whose optional columns may be all-null in some (types come from the schema)."""
    columns = list(frames[0].columns)
    out = pd.concat([f.dropna(axis=1, how="all") for f in frames], ignore_index=True).reindex(columns=columns)
    for c in out.columns:
        if out[c].dtype == object:   # NaN fill-ins in list/text columns must be nulls for Spark
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


def _reader(run: ComponentRun):
    return lambda table, version, partitions: run.read_table(table, version=version, partitions=partitions)


@component(
    partitions_def=daily,
    reads=["tip_predictions", "trip_labels"],
    skip_if_inputs_missing=["trip_features"],   # a day whose trips never arrived has nothing to profile
    optional_output=True,
    owner="team:ml",
    group_name="drift",
)
def data_profiles(context: dg.AssetExecutionContext, trip_features: DataFrame, run: ComponentRun,
                  lakehouse: LakehouseResource) -> DataFrame:
    """Mergeable hourly profiles (per zone and payment type) of the day's features, predictions
    and labels: counts, nulls, moments, min/max, fixed-bin histograms, category counts.

    Only the day's partitions are read, so the cost grows with the new data; re-materialising a
    day (after a backfill) replaces its profiles.
    """
    lake = lakehouse.open()
    index = AuditIndex(lake)
    day = context.partition_key
    frames = []
    for target in DRIFT_TARGETS:
        df = trip_features if target.table == "trip_features" else _read_day(run, target.table, day)
        if df is None:
            continue
        version = [i["version"] for i in run.inputs if i["name"] == target.table][-1]
        current = df.selectExpr(*[f"`{c}`" for c in dict.fromkeys(
            [*target.columns, *target.slices, *([target.time_column] if target.time_column else [])])])
        spec = target_spec(lake, index, _reader(run), target, [day], current)
        frames.append(to_rows(profile_spark(current, spec), spec, table=target.table, granularity=spec.granularity,
                              source_version=version))
    return spark_frame(run.spark, _concat(frames), PROFILE_SCHEMA)


@component(
    partitions_def=daily,
    reads=["trip_features", "tip_predictions", "trip_labels", "training_set"],
    skip_if_inputs_missing=["data_profiles"],
    optional_output=True,
    owner="team:ml",
    group_name="drift",
)
def data_drift(context: dg.AssetExecutionContext, config: DriftConfig, data_profiles: DataFrame, run: ComponentRun,
               lakehouse: LakehouseResource, alert_channels: AlertChannelsResource) -> DataFrame | None:
    """Drift of the day against its reference, per column and slice, from the full-data profiles
    (PSI, Jensen-Shannon, Wasserstein, KS with its error bound, chi-square), next to Evidently's
    verdict on a stratified sample; the Evidently report (HTML and JSON) is linked here and in
    each row.
    """
    lake = lakehouse.open()
    index = AuditIndex(lake)
    day = context.partition_key
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    window = (start, start + timedelta(days=1))
    stored: pd.DataFrame = data_profiles.drop("_tl_run_id", "_tl_partition").toPandas()
    out, drifted = [], {}
    for target in DRIFT_TARGETS:
        current = from_rows(stored[stored["table_name"] == target.table])
        if not current:
            continue
        spec = target_spec(lake, index, _reader(run), target, [day])
        ref = resolve_reference(lake, index, target.table, [day], config.reference)
        reference = reference_frame(_reader(run), ref, target)
        results, ref_profiles = compute_drift(target, spec, current, reference)
        report, error = None, None
        try:
            rows = run.read_table(target.table, partitions=[day])
            report = run_evidently(target, reference, rows, ref_profiles, current,
                                   f"{lake.layout.reports_root}/drift/{target.table}/{day}",
                                   run.run_id, max_rows=config.sample_rows)
        except Exception as exc:  # the full-data statistics stand on their own; the failure is recorded per row
            error = scrub_text(f"{type(exc).__name__}: {exc}")
            context.log.error(f"data_drift: Evidently report for {target.table} failed: {error}")
        if report is not None and report.samples is not None:
            multivariate = multivariate_row(target, report.samples)
            if multivariate is not None:
                results.append(multivariate)
        out.append(drift_rows(target, results, ref, window, report, error))
        found = summary(results)
        drifted[target.table] = found["drifted_columns"]
        run.log_metric(f"drifted_columns_{target.table}", float(len(found["drifted_columns"])))
        if report is not None:
            run.output_metadata[f"report/{target.table}"] = dg.MetadataValue.path(report.html_path)
        run.output_metadata[f"reference/{target.table}"] = dg.MetadataValue.text(ref.description)
        if target.alert is not None:
            manager = AlertManager(lake, alert_channels.channels(), attempts=alert_channels.attempts)
            observe_drift_alert(manager, target, results, day, window[1])
    if not out:
        return None
    run.output_metadata["drifted_columns"] = dg.MetadataValue.json(drifted)
    return spark_frame(run.spark, _concat(out), DRIFT_SCHEMA).withColumn("drift_date", F.lit(day))
