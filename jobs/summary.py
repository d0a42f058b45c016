"""The demo's closing summary: what was recorded, and where to look at it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from tracelake.lineage import CHECK_RESULTS, open_lakehouse
from tracelake.lineage.cli_support import format_table
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.monitors.alerts.manager import AlertManager
from tracelake.monitors.alerts.watch import stored_anomalies

from .compliance import print_report_files

__all__ = ["print_summary"]


def print_summary(home: str, result: dict[str, Any], dagster_home: Path, out=sys.stdout) -> None:
    lake = open_lakehouse(home)
    runs = lake.store.component_runs(include_open=True)
    counts = (runs.groupby(["component", "status"]).size().unstack(fill_value=0).reset_index()
              if not runs.empty else None)
    print(f"\nSimulated {result['first_day']} .. {result['last_day']} in {result['seconds']} s.", file=out)
    if counts is not None:
        cols = ["component"] + [c for c in ("succeeded", "failed", "skipped", "abandoned", "started") if c in counts]
        order = ["raw_trips", "trip_labels", "cleaned_trips", "trip_features", "training_set", "tip_model",
                 "tip_predictions", "model_evaluation", "data_profiles", "data_drift"]
        rows = sorted(counts.to_dict("records"), key=lambda r: order.index(r["component"]) if r["component"] in order else 99)
        print("\nComponent runs recorded:\n" + format_table(rows, cols), file=out)
    failed = runs[runs["status"] == "failed"] if not runs.empty else runs
    if len(failed):
        print("\nFailed runs:", file=out)
        for rec in failed.sort_values("run_id").to_dict("records")[:10]:
            print(f"  {rec['run_id']}  {rec['component']} {rec['partition_key']}: {str(rec['error_message'])[:120]}",
                  file=out)
    checks = lake.store.read(CHECK_RESULTS)
    if not checks.empty:
        bad = checks[~checks["passed"].astype(bool)]
        print(f"\nDeclared tests: {len(checks)} evaluated, {len(bad)} failed or warned.", file=out)
        for rec in bad.sort_values("evaluated_at").to_dict("records")[:8]:
            print(f"  {rec['severity'].upper():5s} {rec['component']} {rec['partition_key']} {rec['check_name']}: "
                  f"{str(rec['observed_text'])[:90]}", file=out)
    alerts = AlertManager(lake).alerts()
    if alerts:
        print(f"\nAlerts ({sum(a.status != 'resolved' for a in alerts)} open, "
              f"{sum(a.status == 'resolved' for a in alerts)} resolved):", file=out)
        for a in alerts:
            print(f"  {a.status:8s} {a.policy} on {a.component} (x{a.occurrences}): {a.message[:100]}", file=out)
    anomalies = stored_anomalies(lake)
    if not anomalies.empty:
        print("\nAnomalies stored (not paged): " + ", ".join(
            f"{m} x{n}" for m, n in anomalies["monitor"].value_counts().items()), file=out)
    drift_day = _print_drift(lake, out)
    print_report_files(lake, out)   # compliance reports the demo issued (model versions, the month)
    report = verify_lakehouse(lake)
    print(f"\nAudit check: {'OK' if report.ok else 'PROBLEMS'} - {report.checked_records} chained records, "
          f"{report.checked_runs} outputs matched to their Delta commits.", file=out)
    for problem in report.problems[:5]:
        print(f"  - {problem}", file=out)
    example = runs[(runs["component"] == "tip_predictions") & (runs["status"] == "succeeded")] if not runs.empty else runs
    run_id = example.sort_values("run_id").iloc[-1]["run_id"] if len(example) else "<run id>"
    bad_etl = checks[(checks["check_name"] == "fare_amount_range") & ~checks["passed"].astype(bool)] \
        if not checks.empty else checks
    bad_day = bad_etl.iloc[0]["partition_key"] if len(bad_etl) else None
    db = Path(home) / "mlflow" / "mlflow.db"
    q = shlex.quote
    mlflow_ui = f"MLFLOW_DISABLE_TELEMETRY=true .venv/bin/mlflow ui --backend-store-uri {q('sqlite:///' + str(db))} --port 5000"
    print(f"""
Look at it:
  Dagster UI (asset graph, runs, metadata):   DAGSTER_HOME={q(str(dagster_home))} .venv/bin/dagster dev -w workspace.yaml
                                              (or: .venv/bin/tracelake ui)  then open http://127.0.0.1:3000
  MLflow UI (one experiment per component):   {mlflow_ui}
  Latest prediction run, everything recorded: .venv/bin/tracelake run show {run_id}
  Runs of a component over time:              .venv/bin/tracelake history cleaned_trips
  Alerts and failed tests:                    .venv/bin/tracelake alerts --status all; .venv/bin/tracelake checks --failed
  Integrity of the audit log:                 .venv/bin/tracelake audit verify""", file=out)
    if bad_day:
        bad_run = bad_etl.iloc[0]["run_id"]
        print(f"""
Follow the ETL bug of {bad_day}:
  .venv/bin/tracelake trace tip_predictions --where "pickup_date = '{bad_day}' AND pickup_zone = 'Airport'"
  .venv/bin/tracelake impact {bad_run}
  .venv/bin/tracelake sql "SELECT _tl_partition, avg(fare_amount) FROM cleaned_trips GROUP BY 1 ORDER BY 1\"""", file=out)
    if drift_day:
        print(f"""
See the drift of {drift_day} (stored, not paged), with its Evidently report and root cause:
  .venv/bin/tracelake drift trip_features --window {drift_day} --explain --report""", file=out)


def _print_drift(lake, out) -> str | None:
    """Days whose features drifted (whole table, not slices); returns the first such day after
    the first one, which in the demo is the covariate shift rather than the ETL bug."""
    from deltalake import DeltaTable

    path = lake.layout.table("data_drift")
    if not DeltaTable.is_deltatable(path):
        return None
    frame = DeltaTable(path).to_pandas(columns=["table_name", "column_name", "slice_key", "drifted", "drift_date"])
    hit = frame[(frame["slice_key"] == "all") & (frame["drifted"] == True)]  # noqa: E712 (null = no verdict)
    days = frame["drift_date"].nunique()
    print(f"\nDrift ({days} days compared with the training data of the model that scored them):", file=out)
    for table, rows in hit.groupby("table_name"):
        per_day = rows.groupby("drift_date")["column_name"].apply(lambda c: ", ".join(sorted(c)))
        shown = "; ".join(f"{d}: {cols}" for d, cols in list(per_day.items())[:4])
        more = f" (+{len(per_day) - 4} more days)" if len(per_day) > 4 else ""
        print(f"  {table}: {shown}{more}", file=out)
    if hit.empty:
        print("  nothing drifted beyond its threshold", file=out)
    feature_days = sorted(hit[hit["table_name"] == "trip_features"]["drift_date"].unique())
    return feature_days[1] if len(feature_days) > 1 else (feature_days[0] if feature_days else None)
