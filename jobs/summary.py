"""The demo's closing summary: what was recorded, and where to look at it.

Everything is read from the lakehouse without Spark (the audit store, delta-rs for the drift
table, the demo's state file for its faults), so the summary can be printed again for any demo
lakehouse: ``print_summary(home, {"first_day": ..., "last_day": ..., "seconds": ...}, dagster_home)``.
"""

from __future__ import annotations

import shlex
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from tracelake.lineage import CHECK_RESULTS, open_lakehouse
from tracelake.lineage.cli_support import format_table
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.monitors.alerts.manager import AlertManager
from tracelake.monitors.alerts.watch import stored_anomalies

from .compliance import print_report_files

__all__ = ["print_summary"]

ORDER = ["raw_trips", "trip_labels", "cleaned_trips", "trip_features", "training_set", "tip_model",
         "tip_predictions", "model_evaluation", "data_profiles", "data_drift"]
MULTIVARIATE = "multivariate"   # the drift table's kind for the domain classifier's all-columns score
DOCS_URL = "http://127.0.0.1:3030"   # where `tracelake ui` serves runbooks and reports by default (jobs/docs_server.py)

# What each kind of injected fault looks like in the Dagster UI, and the components whose runs or
# declared tests it fails - their failed runs and tests on the fault's days are listed from the
# record, so the text says what happened, not only what was planned.
_FAULT_SIGNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "missing_partition": ("the raw feed never arrives: raw_trips fails (red), cleaned_trips and trip_features are not "
                          "run (failed partitions); the day's predictions are skipped, late", ("raw_trips",)),
    "schema_break": ("fare_amount arrives renamed: raw_trips' blocking schema test fails (red; the batch is kept in "
                     "raw_trips__rejected); downstream as for a missing feed", ("raw_trips",)),
    "etl_bug": ("fares in cents: cleaned_trips' fare_amount_range check fails (red check, the run succeeds); the "
                "day's features and predictions drift", ("cleaned_trips",)),
    "concept_drift": ("tipping changes: no run fails; the sla_tip_recall check on tip_predictions fails once the "
                      "labels land (alert tip_recall_sla)", ()),
    "covariate_shift": ("a new pickup zone: trip_features drift from then on (stored, not paged)", ()),
    "late_labels": ("labels arrive {param:g} days later than usual: the day's evaluation is revised when they land",
                    ()),
    "missing_labels": ("{percent} of the labels never arrive: the day is evaluated on the rest", ()),
}


def print_summary(home: str, result: dict[str, Any], dagster_home: Path, out=sys.stdout) -> None:
    lake = open_lakehouse(home)
    runs = lake.store.component_runs(include_open=True)
    checks = lake.store.read(CHECK_RESULTS)
    print(f"\nSimulated {result['first_day']} .. {result['last_day']} in {result['seconds']} s.", file=out)
    _print_runs(runs, out)
    _print_checks(checks, out)
    _print_alerts(lake, out)
    drift_day = _print_drift(lake, out)
    print_report_files(lake, out)   # compliance reports the demo issued (model versions, the month)
    _print_faults(home, runs, checks, out)
    report = verify_lakehouse(lake)
    print(f"\nAudit check: {'OK' if report.ok else 'PROBLEMS'} - {report.checked_records} chained records, "
          f"{report.checked_runs} outputs matched to their Delta commits.", file=out)
    for problem in report.problems[:5]:
        print(f"  - {problem}", file=out)
    _print_commands(home, runs, checks, dagster_home, drift_day, out)


def _print_runs(runs: pd.DataFrame, out) -> None:
    if runs.empty:
        return
    counts = runs.groupby(["component", "status"]).size().unstack(fill_value=0).reset_index()
    cols = ["component"] + [c for c in ("succeeded", "failed", "skipped", "abandoned", "started") if c in counts]
    rows = sorted(counts.to_dict("records"), key=lambda r: ORDER.index(r["component"]) if r["component"] in ORDER else 99)
    print("\nComponent runs recorded:\n" + format_table(rows, cols), file=out)
    failed = runs[runs["status"] == "failed"]
    if len(failed):
        print("\nFailed runs:", file=out)
        for rec in failed.sort_values("run_id").to_dict("records")[:10]:
            print(f"  {rec['run_id']}  {rec['component']} {rec['partition_key']}: {str(rec['error_message'])[:120]}",
                  file=out)


def _print_checks(checks: pd.DataFrame, out) -> None:
    if checks.empty:
        return
    bad = checks[~checks["passed"].astype(bool)]
    print(f"\nDeclared tests: {len(checks)} evaluated, {len(bad)} failed or warned.", file=out)
    for rec in bad.sort_values("evaluated_at").to_dict("records")[:8]:
        print(f"  {rec['severity'].upper():5s} {rec['component']} {rec['partition_key']} {rec['check_name']}: "
              f"{str(rec['observed_text'])[:90]}", file=out)


def _print_alerts(lake, out) -> None:
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


def _print_drift(lake, out) -> str | None:
    """Days whose features drifted (whole table, not slices), and where their Evidently reports
    are; returns the first such day after the first one, which in the demo is the covariate
    shift rather than the ETL bug."""
    from deltalake import DeltaTable

    path = lake.layout.table("data_drift")
    if not DeltaTable.is_deltatable(path):
        return None
    frame = DeltaTable(path).to_pandas(columns=["table_name", "column_name", "kind", "slice_key", "drifted",
                                                "drift_date", "report_html"])
    whole = frame[frame["slice_key"] == "all"]
    hit = whole[whole["drifted"] == True]  # noqa: E712 (null = no verdict)
    print(f"\nDrift ({frame['drift_date'].nunique()} days compared with the training data of the model that "
          "scored them):", file=out)
    for table, rows in hit.groupby("table_name"):
        # The domain classifier scores all columns together: said as "multivariate", first.
        named = rows.assign(name=rows["column_name"].where(rows["kind"] != MULTIVARIATE, MULTIVARIATE))
        per_day = named.groupby("drift_date")["name"].apply(
            lambda c: ", ".join(sorted(c, key=lambda n: (n != MULTIVARIATE, n))))
        shown = "; ".join(f"{d}: {cols}" for d, cols in list(per_day.items())[:4])
        more = f" (+{len(per_day) - 4} more days)" if len(per_day) > 4 else ""
        print(f"  {table}: {shown}{more}", file=out)
    if hit.empty:
        print("  nothing drifted beyond its threshold", file=out)
    feature_days = sorted(hit[hit["table_name"] == "trip_features"]["drift_date"].unique())
    day = feature_days[1] if len(feature_days) > 1 else (feature_days[0] if feature_days else None)
    _print_evidently_reports(whole, day, out)
    return day


def _print_evidently_reports(whole: pd.DataFrame, day: str | None, out) -> None:
    """The daily Evidently reports, as the drift runs recorded their paths."""
    reports = whole.dropna(subset=["report_html"]).drop_duplicates(["table_name", "drift_date"])
    if reports.empty:
        return
    folder = _reports_folder(list(reports["report_html"]))
    print(f"\nEvidently drift reports ({len(reports)}, one per table and day; served by `tracelake ui` under "
          f"{DOCS_URL}/reports/drift/):\n  {folder}/<table>/<day>/<drift run id>.html", file=out)
    example = reports[(reports["table_name"] == "trip_features") & (reports["drift_date"] == day)]
    for rec in (example if len(example) else reports.tail(1)).to_dict("records"):
        print(f"  e.g. {rec['table_name']} {rec['drift_date']}: {rec['report_html']}", file=out)


def _reports_folder(paths: list[str]) -> str:
    """The folder above ``<table>/<day>/<file>`` (object-store URIs too: text, not os.path)."""
    folders = sorted({p.rsplit("/", 3)[0] for p in paths})
    return folders[0] if len(folders) == 1 else " or ".join(folders[:2])


def _print_faults(home: str, runs: pd.DataFrame, checks: pd.DataFrame, out) -> None:
    """The demo's injected faults by date, what each looks like in the Dagster UI, and the failed
    runs and tests the record holds for it - the red nodes and failed partitions a user sees."""
    from tracelake.assets import parse_faults

    from .demo import _load_state

    state = _load_state(home)
    if not state or not state.get("config", {}).get("faults") or not state.get("last_day"):
        return
    last = date.fromisoformat(state["last_day"])
    faults = sorted(parse_faults(state["config"]["faults"]).faults, key=lambda f: (f.start, f.kind))
    print("\nInjected faults, by date (the red nodes, failed partitions and failed checks in the Dagster UI):",
          file=out)
    for fault in faults:
        span = fault.start.isoformat() + ("" if fault.end == fault.start else f"..{fault.end or ''}")
        if fault.start > last:
            print(f"  {span:22s} {fault.kind:17s} after the last simulated day", file=out)
            continue
        text, components = _FAULT_SIGNS.get(fault.kind, ("", ()))
        if fault.param is not None:
            text = text.format(param=fault.param, percent=f"{fault.param:.0%}")
        print(f"  {span:22s} {fault.kind:17s} {text}".rstrip(), file=out)
        end = min(fault.end or last, last)
        days = {(fault.start + timedelta(days=i)).isoformat() for i in range((end - fault.start).days + 1)}
        seen = _fault_record(runs, checks, days, components)
        if seen:
            print(f"  {'':40s} recorded: {'; '.join(seen)}", file=out)


def _fault_record(runs: pd.DataFrame, checks: pd.DataFrame, days: set[str], components: tuple[str, ...]) -> list[str]:
    """Failed runs and failed or warned tests of ``components`` on ``days``."""
    seen = []
    if not runs.empty:
        failed = runs[runs["component"].isin(components) & runs["partition_key"].isin(days)
                      & (runs["status"] == "failed")]
        seen += [f"{r['component']} {r['partition_key']} failed" for r in failed.sort_values("partition_key").to_dict("records")]
    if not checks.empty:
        bad = checks[checks["component"].isin(components) & checks["partition_key"].isin(days)
                     & ~checks["passed"].astype(bool)]
        seen += [f"{r['component']} {r['partition_key']} test {r['check_name']} {r['severity'].upper()}"
                 for r in bad.sort_values("partition_key").to_dict("records")]
    return seen


def _print_commands(home: str, runs: pd.DataFrame, checks: pd.DataFrame, dagster_home: Path,
                    drift_day: str | None, out) -> None:
    from .demo import demo_window_end

    q = shlex.quote
    tl = _tracelake(home)
    example = runs[(runs["component"] == "tip_predictions") & (runs["status"] == "succeeded")] if not runs.empty else runs
    run_id = example.sort_values("run_id").iloc[-1]["run_id"] if len(example) else "<run id>"
    db = Path(home) / "mlflow" / "mlflow.db"
    mlflow_ui = f"MLFLOW_DISABLE_TELEMETRY=true .venv/bin/mlflow ui --backend-store-uri {q('sqlite:///' + str(db))} --port 5000"
    end = demo_window_end(home) or "<the day after the last simulated day>"
    print(f"""
Look at it:
  Dagster UI (asset graph, runs, checks):     {tl} ui   then open http://127.0.0.1:3000
      (it shows the demo's days only and serves the runbooks and reports the UI links to; plain `dagster dev`
      needs DAGSTER_HOME={q(str(dagster_home))}, TRACELAKE_PARTITIONS_END={end}
      and TRACELAKE_RUNBOOK_BASE=<where docs/runbooks.md is served>)
  MLflow UI (one experiment per component):   {mlflow_ui}
  Latest prediction run, everything recorded: {tl} run show {run_id}
  Runs of a component over time:              {tl} history cleaned_trips
  Alerts and failed tests:                    {tl} alerts --status all; {tl} checks --failed
  Integrity of the audit log:                 {tl} audit verify""", file=out)
    bad_etl = checks[(checks["check_name"] == "fare_amount_range") & ~checks["passed"].astype(bool)] \
        if not checks.empty else checks
    if len(bad_etl):
        bad_day, bad_run = bad_etl.iloc[0]["partition_key"], bad_etl.iloc[0]["run_id"]
        print(f"""
Follow the ETL bug of {bad_day}:
  {tl} trace tip_predictions --where "pickup_date = '{bad_day}' AND pickup_zone = 'Airport'"
  {tl} impact {bad_run}
  {tl} sql "SELECT _tl_partition, avg(fare_amount) FROM cleaned_trips GROUP BY 1 ORDER BY 1\"""", file=out)
    if drift_day:
        print(f"""
See the drift of {drift_day} (stored, not paged), with its Evidently report and root cause:
  {tl} drift trip_features --window {drift_day} --explain --report""", file=out)


def _tracelake(home: str) -> str:
    """The command to type: ``--home`` unless the lakehouse is the default ``./lakehouse`` (the
    demo's own process knows its home; the user's next shell does not)."""
    from tracelake.lineage.settings import is_local_uri, to_local_path

    if is_local_uri(home) and to_local_path(home).resolve() == (Path.cwd() / "lakehouse").resolve():
        return ".venv/bin/tracelake"
    return f".venv/bin/tracelake --home {shlex.quote(home)}"
