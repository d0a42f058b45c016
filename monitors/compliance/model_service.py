"""The model dossier's sections on a version's serving life: its performance in service and the
incidents around it.

The serving life is what the model's consumers recorded: every run that loaded the version and
the days of data they scored. Performance is the late-label evaluation of those days (newest
computation of each day), how the labels arrived, and every limit crossed while it served;
incidents are the alerts raised on any component of its lineage in that time.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd

from tracelake.monitors.compliance.common import ALERT_COLUMNS, alert_lifecycles, check_issue_rows, run_row, table
from tracelake.monitors.compliance.records import Records

__all__ = ["incidents_section", "mean_metrics", "performance_section", "serving_runs", "span"]

# Evaluation metrics shown per day, when recorded (others are kept in the JSON's slice table).
_DAILY = ["n_predictions", "n_labelled", "label_coverage", "precision", "recall", "roc_auc", "log_loss",
          "calibration_error", "prediction_bias"]
_SLICE = ["recall", "precision", "roc_auc", "prediction_bias"]


def serving_runs(records: Records, name: str, version: str) -> list[dict[str, Any]]:
    """Every run that loaded this model version, in the order of the days it scored (cited)."""
    out = []
    for run_id in records.index.model_consumers(name, version):
        records.cited.add(run_id)
        out.append({**run_row(records, run_id), "day": records.run_days.get(run_id)})
    return sorted(out, key=lambda r: (str(r["day"]), r["run_id"]))


def span(days: list[date | None]) -> tuple[date | None, date | None]:
    """(first, last) of the known days; both None when no day is known."""
    known = sorted(d for d in days if d is not None)
    return (known[0], known[-1]) if known else (None, None)


# -- performance --------------------------------------------------------------------------------------

def _eval_metrics(records: Records, name: str, version: str) -> pd.DataFrame:
    m = records.metrics
    if m.empty:
        return m
    hit = m[(m["model_version"].astype(str) == str(version)) & ((m["model_name"] == name) | m["model_name"].isna())]
    return hit


def _newest(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["computed_at", "chain_seq"]).drop_duplicates(
        ["component", "metric", "window_start", "slice_key", "slice_value"], keep="last")


def mean_metrics(records: Records, name: str, version: str) -> dict[str, float]:
    """Mean of the newest daily values of the headline metrics (slice all) over the serving life."""
    frame = _eval_metrics(records, name, version)
    if frame.empty:
        return {}
    newest = _newest(frame)
    overall = newest[(newest["slice_key"] == "all") & newest["metric"].isin(["recall", "precision", "roc_auc",
                                                                             "log_loss", "prediction_bias",
                                                                             "label_coverage"])]
    return {m: float(g["value"].mean()) for m, g in overall.groupby("metric")}


def _label_arrival(records: Records, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per day scored: how many days after it labels first arrived, coverage then and now."""
    cov = frame[(frame["metric"] == "label_coverage") & (frame["slice_key"] == "all")]
    if cov.empty:
        return []
    out = []
    for window, g in cov.groupby("window_start"):
        day = pd.Timestamp(window).date()
        points = []
        for r in g.to_dict("records"):
            at = records.run_days.get(r["run_id"]) if r.get("run_id") in records.run_days.index else None
            at = at or pd.Timestamp(r["computed_at"]).date()
            points.append((at, float(r["value"]), r["run_id"]))
        points.sort()
        final = points[-1][1]
        first = next(((a, v) for a, v, _ in points if v > 0), None)
        full = next((a for a, v, _ in points if v >= 0.95 * final and v > 0), None)
        out.append({"day": day, "evaluations": len(points), "first_labels_after_days": (first[0] - day).days
                    if first else None, "coverage_first": first[1] if first else None,
                    "coverage_now": final, "days_to_95pct_of_final": (full - day).days if full else None,
                    "complete": final >= 0.999})
    return out


def _daily_rows(newest: pd.DataFrame) -> list[dict[str, Any]]:
    overall = newest[newest["slice_key"] == "all"].pivot_table(index="window_start", columns="metric",
                                                               values="value", aggfunc="last")
    return [{"day": pd.Timestamp(window).date(), **{m: r.get(m) for m in _DAILY if m in r}}
            for window, r in overall.sort_index().iterrows()]


def _slice_rows(newest: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    sliced = newest[newest["slice_key"] != "all"]
    for (key, value), g in sliced.groupby(["slice_key", "slice_value"]):
        piv = g.pivot_table(index="window_start", columns="metric", values="value", aggfunc="last")
        row = {"slice": f"{key}={value}", "days": len(piv),
               "labelled": float(piv["n_labelled"].sum()) if "n_labelled" in piv else None}
        for m in _SLICE:
            if m in piv:
                row[f"mean_{m}"] = float(piv[m].mean())
        if "recall" in piv:
            row["worst_recall"] = float(piv["recall"].min())
        out.append(row)
    return out


def performance_section(records: Records, name: str, version: str,
                        consumers: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = span([c["day"] for c in consumers])
    components = sorted({c["component"] for c in consumers})
    frame = _eval_metrics(records, name, version)
    daily_rows: list[dict[str, Any]] = []
    slice_rows: list[dict[str, Any]] = []
    arrival: list[dict[str, Any]] = []
    metric_names: list[str] = []
    if not frame.empty:
        newest = _newest(frame)
        for r in newest["run_id"].dropna().unique():
            records.cited.add(r)
        metric_names = sorted(newest["metric"].unique())
        daily_rows, slice_rows = _daily_rows(newest), _slice_rows(newest)
        arrival = _label_arrival(records, frame)
    limits = _limits(records, consumers, components, first, last)
    facts = [["serving life", f"{first} .. {last}" if first else "never served"],
             ["serving runs", f"{len(consumers)} ({_counts([c['status'] for c in consumers])})" if consumers else "0"],
             ["rows scored", str(sum(c["rows"] or 0 for c in consumers if c["status"] == "succeeded"))],
             ["metrics recorded", ", ".join(metric_names) or "none (no labels evaluated yet)"],
             ["limits crossed", f"{len(limits)} (failed or warned checks of serving runs, anomalies, SLA breaches)"]]
    daily_cols = ["day", *[m for m in _DAILY if any(m in r for r in daily_rows)]]
    slice_cols = ["slice", "days", "labelled",
                  *[f"mean_{m}" for m in _SLICE if any(f"mean_{m}" in r for r in slice_rows)],
                  *(["worst_recall"] if any("worst_recall" in r for r in slice_rows) else [])]
    return {
        "id": "performance", "title": "Performance in service",
        "proves": "How the model performed on the data it actually scored, as labels arrived: the declared "
                  "evaluation metrics per day and per slice (newest computation of each day), how late the "
                  "labels came and how complete they are, and every bias or action limit crossed while it served.",
        "facts": facts,
        "tables": [
            table("Serving runs (every run that loaded this version)", ["day", "component", "partition_key", "status",
                                                                       "output", "rows", "run_id"], consumers),
            table("Evaluation per day scored (slice: all)", daily_cols, daily_rows,
                  note="label_coverage = labelled / predicted for that day, as of the newest evaluation"),
            table("Label arrival", ["day", "evaluations", "first_labels_after_days", "coverage_first",
                                    "days_to_95pct_of_final", "coverage_now", "complete"], arrival),
            table("Per slice over the serving life (unweighted mean of daily values; worst = lowest day)",
                  slice_cols, slice_rows),
            table("Limits crossed while serving", ["day", "kind", "component", "name", "observed", "limit", "detail",
                                                   "record"], limits),
        ],
    }


def _limits(records: Records, consumers: list[dict[str, Any]], components: list[str], first: date | None,
            last: date | None) -> list[dict[str, Any]]:
    out = []
    run_ids = {c["run_id"] for c in consumers}
    for r in check_issue_rows(records.checks_of(run_ids)):
        out.append({"day": records.run_days.get(r["run_id"]), "kind": f"declared test {r['outcome']}",
                    "component": r["component"], "name": r["check"], "observed": r["observed"],
                    "limit": r["threshold"], "detail": r["runbook"], "record": r["check_id"]})
    if first is None or last is None:   # never served: both are None (``span``)
        return out
    lo, hi = pd.Timestamp(first, tz="UTC"), pd.Timestamp(last + timedelta(days=1), tz="UTC")
    an = records.anomalies
    if not an.empty:
        hit = an[an["component"].isin(components) & (an["time"] >= lo) & (an["time"] < hi)]
        for r in hit.sort_values("time").to_dict("records"):
            out.append({"day": pd.Timestamp(r["time"]).date(), "kind": "anomaly", "component": r["component"],
                        "name": f"{r['monitor']}: {r['metric']}" + (f" [{r['slice']}]" if r.get("slice") else ""),
                        "observed": r["value"], "limit": f"[{_num(r.get('lower'))}, {_num(r.get('upper'))}]",
                        "detail": r.get("rule"), "record": r["anomaly_id"]})
    sla = records.sla_evaluations
    if not sla.empty:
        hit = sla[sla["component"].isin(components) & sla["breached"].fillna(False).astype(bool)
                  & (sla["window_end"] > lo) & (sla["window_start"] < hi + pd.Timedelta(days=2))]
        for r in hit.sort_values("window_start").to_dict("records"):
            out.append({"day": pd.Timestamp(r["window_start"]).date(), "kind": "SLA breached",
                        "component": r["component"], "name": r["sla"], "observed": r.get("observed_value"),
                        "limit": r.get("threshold_value"), "detail": r.get("message"), "record": r["evaluation_id"]})
    return sorted(out, key=lambda r: (str(r["day"]), r["kind"]))


def _counts(values: list[Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in pd.Series(values).value_counts().items())


def _num(v: Any) -> str:
    return "-" if v is None or v != v else f"{float(v):.4g}"


# -- incidents -----------------------------------------------------------------------------------------

def incidents_section(records: Records, components: set[str], first: date | None, last: date | None) -> dict[str, Any]:
    rows = []
    # ``last`` is known whenever ``first`` is (both come from the same spans)
    if first is not None and last is not None:
        lo, hi = pd.Timestamp(first, tz="UTC"), pd.Timestamp(last + timedelta(days=2), tz="UTC")
        for a in alert_lifecycles(records.alert_events):
            if a["component"] not in components:
                continue
            opened = pd.Timestamp(a["opened"]) if a["opened"] is not None else None
            closed = pd.Timestamp(a["resolved"]) if a["resolved"] is not None else None
            if opened is not None and opened < hi and (closed is None or closed >= lo):
                rows.append(a)
    by_status = pd.Series([r["status"] for r in rows]).value_counts().to_dict() if rows else {}
    return {
        "id": "incidents", "title": "Incidents",
        "proves": "Every alert raised on a component in this model's lineage while its data was produced and "
                  "while it served - when it opened, who acknowledged it, when and how it was resolved - and the "
                  "runbook it pointed to.",
        "facts": [["alerts", f"{len(rows)} ({', '.join(f'{v} {k}' for k, v in by_status.items()) or 'none'})"],
                  ["window", f"{first} .. {last + timedelta(days=1) if last else None} (data time; alerts are "
                             "judged the morning after)" if first else "-"]],
        "tables": [table("Alerts", ALERT_COLUMNS, rows)],
    }
