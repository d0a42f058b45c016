"""The period report: everything in service between two days, from the records.

A run belongs to the period when the data it processed does (its partition's day; a run
without a dated partition counts on the day it started) - so last March's backfill lands in
March's report, and a report re-issued later counts the same runs. Alerts count in the period
they opened; drift verdicts on the day they judged. Sections: scope, models served, runs per
component and their outcomes, declared tests that failed or warned, alerts, drift verdicts,
retention and integrity.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from tracelake.monitors.compliance.common import (
    ALERT_COLUMNS,
    alert_lifecycles,
    check_issue_rows,
    check_summary_rows,
    day_bounds,
    quarantine_rows,
    table,
)
from tracelake.monitors.compliance.drift_verdicts import drift_rows_for
from tracelake.monitors.compliance.integrity import integrity_checks, integrity_section
from tracelake.monitors.compliance.lineage_graph import lineage_figure
from tracelake.monitors.compliance.records import Records, ReportInputError, now_utc

__all__ = ["alerts_opened_in", "build_period_report", "parse_period", "runs_in_period"]

_STATUSES = ["succeeded", "failed", "skipped", "abandoned", "started"]


def parse_period(start: str | date, end: str | date) -> tuple[date, date]:
    """--from/--to as ISO days (inclusive); an empty or reversed window is refused."""
    def day(text: Any, flag: str) -> date:
        if isinstance(text, date):
            return text
        try:
            return date.fromisoformat(str(text).strip()[:10])
        except ValueError:
            raise ReportInputError(f"{flag} {text!r} is not a day; use ISO dates like 2026-01-01") from None
    a, b = day(start, "--from"), day(end, "--to")
    if b < a:
        raise ReportInputError(f"empty window: --to {b} is before --from {a}")
    return a, b


def runs_in_period(records: Records, first: date, last: date) -> list[str]:
    days = records.run_days
    return sorted(r for r, d in days.items() if d is not None and first <= d <= last)


def alerts_opened_in(records: Records, first: date, last: date) -> list[dict[str, Any]]:
    lo, hi = day_bounds(first, last)
    out = []
    for a in alert_lifecycles(records.alert_events):
        opened = pd.Timestamp(a["opened"]) if a["opened"] is not None else None
        if opened is not None and lo <= opened < hi:
            out.append(a)
    return out


def _check_window(records: Records, first: date, last: date, run_ids: list[str], allow_empty: bool) -> None:
    days = sorted(d for d in records.run_days if d is not None)
    if not days:
        raise ReportInputError(f"no component runs are recorded in {records.lake.settings.home} yet")
    if last < days[0]:
        raise ReportInputError(f"the window {first}..{last} is before any data: the first recorded run is for "
                               f"{days[0]}")
    if not run_ids and not allow_empty:
        raise ReportInputError(f"no component run processed data of {first}..{last}; the records cover "
                               f"{days[0]}..{days[-1]}")


def _models_served(records: Records, run_ids: list[str]) -> list[dict[str, Any]]:
    index = records.index
    inputs = index.inputs
    if inputs.empty:
        return []
    hit = inputs[(inputs["kind"] == "model") & inputs["run_id"].isin(set(run_ids))]
    out = []
    for (name, version), g in hit.groupby(["name", "model_version"]):
        consumers = sorted(set(g["run_id"]))
        days = sorted(d for d in (records.run_days.get(r) for r in consumers) if d is not None)
        registrar = index.model_registrar(name, version)
        trained_on = None
        if registrar and index.has(registrar):
            records.cited.add(registrar)
            trained_on = "; ".join(f"{i['name']}@v{i.get('version')}" for i in index.record(registrar)["inputs"]
                                   if i.get("kind") == "table")
        rows = sum(int(index.runs.at[r, "output_rows"] or 0) for r in consumers
                   if index.runs.at[r, "status"] == "succeeded" and index.runs.at[r, "output_rows"] is not None)
        out.append({"model": f"{name} v{version}", "serving_runs": len(consumers),
                    "succeeded": int(sum(index.runs.at[r, "status"] == "succeeded" for r in consumers)),
                    "first_day": days[0] if days else None, "last_day": days[-1] if days else None,
                    "rows_scored": rows, "registered_by": registrar, "trained_on": trained_on,
                    "components": ", ".join(sorted({index.runs.at[r, "component"] for r in consumers}))})
    return sorted(out, key=lambda r: (str(r["first_day"]), r["model"]))


def _runs_table(records: Records, run_ids: list[str]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    runs = records.index.runs.loc[run_ids] if run_ids else records.index.runs.iloc[0:0]
    rows, totals = [], dict.fromkeys(_STATUSES, 0)
    for component, g in runs.groupby("component", sort=True):
        counts = g["status"].value_counts().to_dict()
        days = sorted(d for d in (records.run_days.get(r) for r in g.index) if d is not None)
        secs = pd.to_numeric(g["duration_ms"], errors="coerce") / 1000
        row = {"component": component, "runs": len(g), **{s: int(counts.get(s, 0)) for s in _STATUSES},
               "first_day": days[0] if days else None, "last_day": days[-1] if days else None,
               "median_seconds": float(secs.median()) if secs.notna().any() else None,
               "rows_written": int(pd.to_numeric(g["output_rows"], errors="coerce").fillna(0).sum())}
        for s in _STATUSES:
            totals[s] += row[s]
        rows.append(row)
    return rows, totals


def _failed_runs(records: Records, run_ids: list[str]) -> list[dict[str, Any]]:
    runs = records.index.runs
    out = []
    for run_id in run_ids:
        status = runs.at[run_id, "status"]
        if status in ("failed", "abandoned"):
            records.cited.add(run_id)
            out.append({"day": records.run_days.get(run_id), "component": runs.at[run_id, "component"],
                        "partition_key": runs.at[run_id, "partition_key"], "status": status,
                        "error": runs.at[run_id, "error_message"], "run_id": run_id})
    return out


def _drift(records: Records, first: date, last: date) -> dict[str, Any]:
    frame = records.drift
    hit = frame[[d is not None and first <= d <= last for d in frame["day"]]] if not frame.empty else frame
    per_day, summary = drift_rows_for(records, hit)
    return {
        "id": "drift", "title": "Drift verdicts",
        "proves": "What the daily drift jobs concluded for every watched table in the period - against the "
                  "reference each verdict records (by default the training data of the model that scored the day) - "
                  "with the Evidently report of each day.",
        "facts": [["days judged", str(len({r['day'] for r in per_day}))],
                  ["tables", ", ".join(sorted({r['table'] for r in per_day})) or "none"]],
        "tables": [
            table("Drift per table", ["table", "days", "days_with_drift", "columns_drifted", "first_day", "last_day"],
                  summary),
            table("Drift verdicts per day (whole table)", ["table", "day", "verdict", "drifted_columns", "max_score",
                                                           "multivariate_auc", "evidently_disagrees_on", "reference",
                                                           "evidently_report", "report_sha256"], per_day),
        ],
    }


def _retention(records: Records, first: date, last: date) -> list[dict[str, Any]]:
    frame = records.retention_checks
    if frame.empty:
        return []
    lo, hi = day_bounds(first, last)
    hit = frame[(frame["checked_at"] >= lo) & (frame["checked_at"] < hi)]
    out = []
    for table_name, g in hit.groupby("table_name"):
        out.append({"table": table_name, "checks": len(g), "failed": int((~g["ok"].astype(bool)).sum()),
                    "last_checked": g["checked_at"].max(), "last_problems": "; ".join(g.iloc[-1]["problems"] or [])
                    or None})
    return out


def build_period_report(records: Records, start: str | date, end: str | date, *, integrity: bool = True,
                        allow_empty: bool = False) -> dict[str, Any]:
    """The JSON model of the period report; raises ReportInputError (before any real work) when
    the window is empty, reversed, before any data, or - unless ``allow_empty`` - holds no run."""
    first, last = parse_period(start, end)
    run_ids = runs_in_period(records, first, last)
    _check_window(records, first, last, run_ids, allow_empty)
    records.cited.update(run_ids)
    days = sorted(d for d in records.run_days if d is not None)
    complete = days[-1] >= last
    models = _models_served(records, run_ids)
    runs_rows, totals = _runs_table(records, run_ids)
    checks = records.checks_of(run_ids)
    issues = check_issue_rows(checks)
    alerts = alerts_opened_in(records, first, last)
    sections = [
        _scope_section(first, last, days, complete, run_ids),
        _models_section(models),
        _runs_section(records, run_ids, runs_rows, totals),
        _checks_section(records, run_ids, checks, issues),
        _alerts_section(alerts),
        _drift(records, first, last),
    ]
    # The recorded retention checks are read before integrity_checks runs: it records checks of its own.
    retention_rows = _retention(records, first, last)
    checks_now = integrity_checks(records) if integrity else None
    heads = records.chain_heads()
    sections.append(_retention_section(records, retention_rows, checks_now))
    if checks_now is not None:
        sections.append(integrity_section(checks_now, heads))
    failed = sum(r["outcome"] == "failed" for r in issues)
    warned = sum(r["outcome"] == "warned" for r in issues)
    return {
        "kind": "period",
        "title": f"Period report: {first} to {last}",
        "subject": {"from": first.isoformat(), "to": last.isoformat()},
        "summary": [["period", f"{first}..{last}" + ("" if complete else f" (data through {days[-1]})")],
                    ["models served", ", ".join(m["model"] for m in models) or "none"],
                    ["runs", f"{len(run_ids)} ({totals['failed']} failed, {totals['abandoned']} abandoned)"],
                    ["declared tests", f"{failed} failed, {warned} warned"],
                    ["alerts opened", str(len(alerts))]],
        "counts": {"runs": len(run_ids), "runs_by_status": totals,
                   "runs_by_component": {r["component"]: r["runs"] for r in runs_rows},
                   "checks_evaluated": len(checks), "checks_failed": failed, "checks_warned": warned,
                   "alerts_opened": len(alerts)},
        "generated_at": now_utc().isoformat(),
        "lakehouse": records.lake.settings.home,
        "sections": sections,
        "built_from": {"chain_heads": heads},
    }


def _scope_section(first: date, last: date, days: list[date], complete: bool, run_ids: list[str]) -> dict[str, Any]:
    return {"id": "scope", "title": "Scope",
            "proves": "Which records this report counts: every component run whose data belongs to the period "
                      "(partition day, else start day), every alert opened in it and every drift verdict on its "
                      "days.",
            "facts": [["period", f"{first} .. {last} (inclusive, UTC days of the data)"],
                      ["records cover", f"{days[0]} .. {days[-1]}"],
                      ["complete", "yes" if complete else f"no: the newest data is of {days[-1]}; a later issue of "
                                                          "this period may count more runs"],
                      ["runs in the period", str(len(run_ids))]]}


def _models_section(models: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "models", "title": "Models served",
            "proves": "Which model versions produced outputs in the period - the versions the serving runs "
                      "recorded loading - how much they scored, and what each was trained on.",
            "facts": [["model versions", str(len(models))]],
            "tables": [table("Models in service", ["model", "serving_runs", "succeeded", "first_day", "last_day",
                                                   "rows_scored", "components", "trained_on", "registered_by"],
                             models)]}


def _runs_section(records: Records, run_ids: list[str], runs_rows: list[dict[str, Any]],
                  totals: dict[str, int]) -> dict[str, Any]:
    return {"id": "runs", "title": "Runs per component",
            "proves": "Every recorded component run of the period and how it ended; a run killed mid-way is "
                      "recorded as abandoned, never lost or counted as succeeded.",
            "facts": [["runs", f"{len(run_ids)}: " + ", ".join(f"{v} {k}" for k, v in totals.items() if v)]],
            "figures": [_period_figure(records, run_ids)] if run_ids else [],
            "tables": [table("Runs per component", ["component", "runs", *_STATUSES, "first_day", "last_day",
                                                    "median_seconds", "rows_written"], runs_rows),
                       table("Runs that failed or were abandoned", ["day", "component", "partition_key", "status",
                                                                    "error", "run_id"],
                             _failed_runs(records, run_ids))]}


def _checks_section(records: Records, run_ids: list[str], checks: pd.DataFrame,
                    issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "checks", "title": "Declared tests",
            "proves": "Every declared test evaluated on the period's runs, and each one that failed or warned with "
                      "its observed value, threshold and runbook; rows set aside by quarantining tests.",
            "facts": [["results", f"{len(checks)} evaluated, {sum(r['outcome'] == 'failed' for r in issues)} failed, "
                                  f"{sum(r['outcome'] == 'warned' for r in issues)} warned"]],
            "tables": [table("Failed and warned", ["component", "partition_key", "check", "outcome", "blocking",
                                                   "observed", "threshold", "failing_rows", "run_id", "runbook"],
                             issues),
                       table("Every declared test (counts of results)", ["component", "check", "evaluated",
                                                                         "passed", "failed", "warned", "severity",
                                                                         "blocking"],
                             check_summary_rows(checks)),
                       table("Quarantined, rejected and missing input", ["component", "partition_key",
                                                                         "quarantined_rows", "quarantine",
                                                                         "rejected_rows", "rejected",
                                                                         "missing_input_partitions", "run_id"],
                             quarantine_rows(records, run_ids))]}


def _alerts_section(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    by_status = (", ".join(f"{v} {k}" for k, v in pd.Series([a['status'] for a in alerts]).value_counts().items())
                 if alerts else "none")
    return {"id": "alerts", "title": "Alerts",
            "proves": "Every alert opened in the period, how it was handled (acknowledged, resolved, by whom) and "
                      "the runbook it pointed to.",
            "facts": [["alerts opened", f"{len(alerts)} (" + by_status + ")"]],
            "tables": [table("Alerts opened in the period", ALERT_COLUMNS, alerts)]}


def _retention_section(records: Records, retention_rows: list[dict[str, Any]],
                       checks_now: dict[str, Any] | None) -> dict[str, Any]:
    facts = [["horizon", f"{records.lake.settings.retention_days} days "
                         "(delta.logRetentionDuration and delta.deletedFileRetentionDuration)"]]
    if checks_now is not None:
        rv = checks_now["retention_verify"]
        facts.append(["verified now", f"{'OK' if rv['ok'] else 'PROBLEMS'}: {rv['tables']} tables"])
    return {"id": "retention", "title": "Retention",
            "proves": "That the history of every table is kept for the configured horizon and its oldest "
                      "version still reads and matches the audit; the checks recorded during the period.",
            "facts": facts,
            "tables": [table("Retention checks recorded in the period", ["table", "checks", "failed",
                                                                         "last_checked", "last_problems"],
                             retention_rows)]}


def _period_figure(records: Records, run_ids: list[str]) -> dict[str, Any]:
    from tracelake.monitors.compliance.closure import Closure

    index = records.index
    ids = set(run_ids)
    edges = []
    for run_id in run_ids:
        for inp in index.record(run_id)["inputs"]:
            if inp.get("kind") == "model":
                reg = index.model_registrar(inp["name"], inp.get("model_version"))
                if reg in ids:
                    edges.append({"child": run_id, "parent": reg, "via": "table",
                                  "input": f"model {inp['name']} v{inp.get('model_version')}"})
                continue
            if inp.get("version") is None:
                continue
            for w in index.live_writers(inp["name"], int(inp["version"]), inp.get("partitions")):
                if w in ids:
                    edges.append({"child": run_id, "parent": w, "via": "table",
                                  "input": f"{inp['name']}@v{inp['version']}"})
    closure = Closure(depth=dict.fromkeys(run_ids, 0), edges=edges)
    return lineage_figure(records, "Components that ran in the period and the tables they read from each other",
                          {"period": closure})
