"""Drift verdicts as report rows: per table and day (with the day's Evidently report, its path
and SHA-256 as this report saw it) and per table over a span of days.

The model dossier shows the verdicts against the model's lineage reference over its serving
life (``model_drift_section``); the period report shows every verdict of its days.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tracelake.monitors.compliance.common import table
from tracelake.monitors.compliance.evidence import file_evidence, resolve_report_path
from tracelake.monitors.compliance.records import Records, plain

__all__ = ["drift_rows_for", "model_drift_section"]


def drift_rows_for(records: Records, frame: pd.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per table and day: verdicts and report; per table: summary) from whole-table drift rows."""
    per_day: list[dict[str, Any]] = []
    if frame.empty:
        return per_day, []
    for (tbl, day), g in frame.groupby(["table_name", "day"], sort=True):
        per_day.append(_day_row(records, tbl, day, g))
    return per_day, _summary_rows(per_day)


def _day_row(records: Records, tbl: Any, day: Any, g: pd.DataFrame) -> dict[str, Any]:
    cols = g[g["kind"] != "multivariate"] if "kind" in g else g
    drifted = sorted(cols.loc[cols["drifted"].fillna(False).astype(bool), "column_name"])
    disagree = sorted(cols.loc[cols["verdicts_agree"].eq(False), "column_name"]) if "verdicts_agree" in cols else []
    multi = g[g["kind"] == "multivariate"] if "kind" in g else g.iloc[0:0]
    recorded = sorted(set(g["report_html"].dropna()))
    reports = [resolve_report_path(records.lake.settings.home, r) for r in recorded]
    evidence = file_evidence(reports[0]) if reports else {}
    for r in g["_tl_run_id"].dropna().unique():
        records.cited.add(r)
    return {
        "table": tbl, "day": day, "reference": g["reference"].iloc[0], "columns": len(cols),
        "drifted_columns": ", ".join(drifted) or None, "verdict": "DRIFT" if drifted else "no drift",
        "max_score": plain(cols["score"].max()),
        "multivariate_auc": plain(multi["score"].iloc[0]) if len(multi) else None,
        "evidently_disagrees_on": ", ".join(disagree) or None,
        "evidently_report": reports[0] if reports else None,
        "evidently_report_recorded": recorded[0] if recorded else None,
        "report_sha256": evidence.get("sha256"), "report_state": evidence.get("state"),
        "drift_run": g["_tl_run_id"].iloc[0]}


def _summary_rows(per_day: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for tbl, rows in pd.DataFrame(per_day).groupby("table"):
        drifted_cols: dict[str, int] = {}
        for text in rows["drifted_columns"].dropna():
            for c in text.split(", "):
                drifted_cols[c] = drifted_cols.get(c, 0) + 1
        summary.append({"table": tbl, "days": len(rows), "days_with_drift": int((rows["verdict"] == "DRIFT").sum()),
                        "columns_drifted": ", ".join(f"{c} ({n} d)" for c, n in sorted(drifted_cols.items())) or None,
                        "first_day": rows["day"].min(), "last_day": rows["day"].max()})
    return summary


def model_drift_section(records: Records, name: str, version: str) -> dict[str, Any]:
    frame = records.drift
    label = f"{name} v{version}"
    hit = frame[(frame["model"] == label) & (frame["reference_kind"] == "lineage")] if not frame.empty else frame
    per_day, summary = drift_rows_for(records, hit)
    refs = sorted(set(hit["reference"].dropna())) if not hit.empty else []
    return {
        "id": "drift", "title": "Drift over the serving life",
        "proves": "Whether the data the model scored, its predictions and the labels moved away from what the "
                  "model was trained on - compared with the exact training set version the lineage records name "
                  "as this model's reference - with the Evidently report of each day (path and SHA-256 at the "
                  "time of this report).",
        "facts": [["drift tables read", ", ".join(f"{k}@v{int(v)}" for k, v in
                                                  hit.groupby("drift_table")["drift_table_version"].max().items())
                   if not hit.empty else "none"],
                  ["lineage references", "; ".join(refs) or "none recorded"],
                  ["days compared", str(len({r['day'] for r in per_day}))]],
        "tables": [
            table("Drift per table over the serving life", ["table", "days", "days_with_drift", "columns_drifted",
                                                            "first_day", "last_day"], summary),
            table("Drift verdicts per day (whole table) with the Evidently report",
                  ["table", "day", "verdict", "drifted_columns", "max_score", "multivariate_auc",
                   "evidently_disagrees_on", "evidently_report", "report_sha256", "report_state"], per_day,
                  note="Report paths are as recorded in the drift table; they are not linked from this file so that "
                       "it stays self-contained. Their SHA-256 identifies the copy this report saw."),
        ],
    }
