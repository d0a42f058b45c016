"""The dossier of one registered model version, built from the records.

Sections, each with what it proves: identity (registry version, registering run, code, config,
trigger, MLflow links); training data (every upstream table@version down to the sources, as
recorded at write time, and the lineage graph); data quality (every declared test upstream of
the training set and of the served predictions); performance in service (evaluation metrics per
slice over the serving life, label arrival, limits crossed); drift against the lineage
reference; incidents (alerts and their runbooks); changes against the previous version; and
integrity (chain heads, audit verify, retention verify).

The model's *serving life* is what its consumers recorded: every run that loaded this version,
and the days of data they scored. Its *training side* is the run-level closure upstream of the
run that registered it; its *serving side* is the closure upstream of its consumers, minus the
training side.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pandas as pd

from tracelake.lineage.query.history import diff_runs
from tracelake.monitors.compliance.closure import Closure, upstream_closure
from tracelake.monitors.compliance.common import (
    ALERT_COLUMNS,
    alert_lifecycles,
    check_issue_rows,
    check_summary_rows,
    quarantine_rows,
    run_row,
    table,
)
from tracelake.monitors.compliance.integrity import integrity_checks, integrity_section
from tracelake.monitors.compliance.records import Records, ReportInputError, now_utc, plain

__all__ = ["build_model_report", "lineage_figure", "resolve_model_version"]

# Evaluation metrics shown per day, when recorded (others are kept in the JSON's slice table).
_DAILY = ["n_predictions", "n_labelled", "label_coverage", "precision", "recall", "roc_auc", "log_loss",
          "calibration_error", "prediction_bias"]
_SLICE = ["recall", "precision", "roc_auc", "prediction_bias"]


def resolve_model_version(records: Records, name: str, version: str | None) -> dict[str, Any]:
    """The registered version asked for (default: the newest), or one clear line saying why not."""
    every = records.registered_versions()
    if not every:
        raise ReportInputError(f"no model version was registered by a recorded run in {records.lake.settings.home}")
    mine = [v for v in every if v["name"] == name]
    if not mine:
        names = sorted({v["name"] for v in every})
        raise ReportInputError(f"unknown model {name!r}: registered models are {', '.join(names)}")
    if version is None:
        return mine[-1]
    wanted = str(version).lstrip("v")
    for v in mine:
        if v["version"] == wanted:
            return v
    raise ReportInputError(f"model {name} has no version {version!r}: registered versions are "
                           f"{', '.join(v['version'] for v in mine)}")


def _serving(records: Records, name: str, version: str) -> list[dict[str, Any]]:
    out = []
    for run_id in records.index.model_consumers(name, version):
        records.cited.add(run_id)
        out.append({**run_row(records, run_id), "day": records.run_days.get(run_id)})
    return sorted(out, key=lambda r: (str(r["day"]), r["run_id"]))


def _span(days: list[date | None]) -> tuple[date | None, date | None]:
    known = sorted(d for d in days if d is not None)
    return (known[0], known[-1]) if known else (None, None)


# -- identity ------------------------------------------------------------------------------------

def _identity(records: Records, model: dict[str, Any], rec: dict[str, Any], mlflow_ui: str) -> dict[str, Any]:
    name, version = model["name"], model["version"]
    config = json.loads(rec.get("config_json") or "{}")
    registered = next((m for m in rec["models"] if m["role"] == "registered" and m["name"] == name
                       and str(m["version"]) == version), {})
    facts = [
        ["registry version", f"{name} v{version}"],
        ["model URI", registered.get("uri") or f"models:/{name}/{version}"],
        ["registered by run", f"{rec['run_id']} ({rec['component']}, partition {rec.get('partition_key')}, "
                              f"status {rec['status']})"],
        ["started / ended", f"{plain(rec.get('started_at'))} / {plain(rec.get('ended_at'))}"],
        ["code version", rec.get("code_version")],
        ["source sha256", rec.get("source_hash")],
        ["git commit", f"{rec.get('git_commit')}{' (dirty working tree)' if rec.get('git_dirty') else ''}"
                       f"{' on ' + rec['git_branch'] if rec.get('git_branch') else ''}"],
        ["triggered by", f"Dagster run {rec.get('dagster_run_id')} (asset {rec.get('asset_key')}); owner "
                         f"{rec.get('owner') or '-'}; host {rec.get('host')} pid {rec.get('pid')}"],
        ["MLflow run (training)", rec.get("mlflow_run_url") or rec.get("mlflow_run_id")],
        ["MLflow run (model)", registered.get("mlflow_run_id")],
        ["MLflow registry", f"{mlflow_ui}/#/models/{name}/versions/{version}"],
        ["training metrics", ", ".join(f"{k}={v:.4g}" for k, v in sorted((rec.get("metrics") or {}).items())) or "-"],
    ]
    libs = sorted(dict(rec.get("library_versions") or {}).items())
    tags = sorted(dict(rec.get("tags") or {}).items())
    return {
        "id": "identity", "title": "Identity",
        "proves": "Which model this is and how it came to be: the registry version, the run that trained and "
                  "registered it, the exact code (source hash and git commit), its configuration as recorded "
                  "(secrets redacted at record time), what triggered it, and where its MLflow records are.",
        "facts": facts,
        "tables": [
            table("Configuration (redacted at record time)", ["key", "value"],
                  [{"key": k, "value": json.dumps(v, sort_keys=True, default=str)}
                   for k, v in (_flat(config) if config else {}).items()]),
            table("Library versions", ["library", "version"], [{"library": k, "version": v} for k, v in libs]),
            *([table("Run tags", ["tag", "value"], [{"tag": k, "value": v} for k, v in tags])] if tags else []),
        ],
    }


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in sorted(value.items()):
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1] or "(root)": value}


# -- training data -------------------------------------------------------------------------------

def _read_at(closure: Closure, run_id: str) -> str:
    versions = sorted({e["version"] for e in closure.edges if e["parent"] == run_id and e["version"] is not None})
    return version_ranges(versions)


def _upstream_rows(records: Records, closure: Closure, side: str, exclude: set[str] = frozenset()) -> list[dict]:
    rows = []
    for run_id, depth in closure.depth.items():
        if run_id in exclude or not records.index.has(run_id):
            continue
        rec = records.record(run_id)
        source = not any(i.get("kind") == "table" for i in rec["inputs"])
        rows.append(run_row(records, run_id, side=side, depth=depth, read_at=_read_at(closure, run_id),
                            table=rec.get("output_table"), version=rec.get("output_version"),
                            day=records.run_days.get(run_id), source="source" if source else None))
    return sorted(rows, key=lambda r: (r["depth"], str(r["table"]), str(r["partition_key"]), r["run_id"]))


def _table_versions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per upstream table: versions, partitions and rows of the runs the model's data came from."""
    by: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = by.setdefault(r["table"] or "-", {"table": r["table"], "runs": 0, "rows": 0, "versions": set(),
                                              "partitions": set(), "schema_hashes": set(), "depth": r["depth"]})
        t["runs"] += 1
        t["rows"] += r["rows"] or 0
        if r["version"] is not None:
            t["versions"].add(int(r["version"]))
        if r["partition_key"]:
            t["partitions"].add(r["partition_key"])
        if r["schema_hash"]:
            t["schema_hashes"].add(r["schema_hash"])
        t["depth"] = min(t["depth"], r["depth"])
    out = []
    for t in sorted(by.values(), key=lambda t: (t["depth"], str(t["table"]))):
        parts = sorted(t["partitions"])
        out.append({"table": t["table"], "depth": t["depth"], "runs": t["runs"], "rows": t["rows"],
                    "versions": version_ranges(t["versions"]),
                    "partitions": f"{parts[0]}..{parts[-1]} ({len(parts)})" if parts else None,
                    "schema_hashes": ", ".join(sorted(t["schema_hashes"]))})
    return out


def version_ranges(versions: set[int] | list[int]) -> str:
    """{0, 1, 2, 3, 7} -> 'v0..v3, v7'."""
    out: list[tuple[int, int]] = []
    for v in sorted(set(versions)):
        if out and out[-1][1] == v - 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return ", ".join(f"v{a}" if a == b else f"v{a}..v{b}" for a, b in out)


def lineage_figure(records: Records, title: str, sides: dict[str, Closure], model_label: str | None = None,
                   registrar: str | None = None) -> dict[str, Any]:
    """A component-level lineage graph: one node per (side, component) with its runs' span and
    check outcomes, edges labelled with the tables and versions read. Laid out by Graphviz."""
    index = records.index
    checks = records.checks
    bad = checks[~checks["passed"].astype(bool)] if not checks.empty else checks
    failed_runs = set(bad.loc[bad["severity"] != "warn", "run_id"]) if not bad.empty else set()
    warned_runs = set(bad.loc[bad["severity"] == "warn", "run_id"]) if not bad.empty else set()
    group_of: dict[str, str] = {}
    groups: dict[str, dict[str, Any]] = {}
    for side, closure in sides.items():
        for run_id in closure.depth:
            if run_id in group_of or not index.has(run_id):
                continue
            meta = index.runs.loc[run_id]
            gid = f"{side}:{meta['component']}"
            group_of[run_id] = gid
            g = groups.setdefault(gid, {"id": gid, "component": meta["component"], "side": side, "runs": [],
                                        "parts": [], "versions": []})
            g["runs"].append(run_id)
            if meta["partition_key"]:
                g["parts"].append(str(meta["partition_key"]))
            if meta["output_version"] is not None and meta["output_version"] == meta["output_version"]:
                g["versions"].append(int(meta["output_version"]))
    nodes = []
    for g in groups.values():
        parts = sorted(g["parts"])
        versions = sorted(g["versions"])
        n_failed = len(set(g["runs"]) & failed_runs)
        n_warned = len(set(g["runs"]) & warned_runs)
        statuses = [index.runs.at[r, "status"] for r in g["runs"]]
        side = f" ({g['side']})" if len(sides) > 1 else ""
        lines = [g["component"], f"{len(g['runs'])} run{'s' if len(g['runs']) != 1 else ''}{side}"]
        if parts:
            lines.append(parts[0] if parts[0] == parts[-1] else f"{parts[0]} .. {parts[-1]}")
        if versions:
            lines.append(f"v{versions[0]}" if versions[0] == versions[-1] else f"v{versions[0]} .. v{versions[-1]}")
        if n_failed or n_warned:
            lines.append(f"{n_failed} run(s) failed checks, {n_warned} warned")
        not_ok = sum(s not in ("succeeded",) for s in statuses)
        if not_ok:
            lines.append(f"{not_ok} run(s) not succeeded")
        nodes.append({"id": g["id"], "label": "\n".join(lines),
                      "state": "failed" if n_failed else "warned" if n_warned else "ok", "kind": "runs"})
    edges: dict[tuple[str, str], set[str]] = {}
    model_id = "model"
    for closure in sides.values():
        for e in closure.edges:
            child, parent = group_of.get(e["child"]), group_of.get(e["parent"])
            if e["via"] == "model" and model_label:
                if child:
                    edges.setdefault((model_id, child), set()).add("loaded")
                continue
            if child and parent and child != parent:
                edges.setdefault((parent, child), set()).add(e["input"])
    if model_label:
        nodes.append({"id": model_id, "label": model_label, "state": "model", "kind": "model"})
        if registrar and registrar in group_of:
            edges.setdefault((group_of[registrar], model_id), set()).add("registered")
    edge_rows = []
    for (src, dst), labels in sorted(edges.items()):
        edge_rows.append({"from": src, "to": dst, "label": _compact_versions(labels)})
    return {"kind": "graph", "title": title, "nodes": nodes, "edges": edge_rows}


def _compact_versions(labels: set[str]) -> str:
    """{'a@v3', 'a@v5', 'b@v2'} -> 'a@v3..v5, b@v2'."""
    by: dict[str, list[int]] = {}
    other = []
    for label in labels:
        name, _, v = label.partition("@v")
        if v.isdigit():
            by.setdefault(name, []).append(int(v))
        else:
            other.append(label)
    parts = [f"{n}@v{min(vs)}" + (f"..v{max(vs)}" if max(vs) != min(vs) else "") for n, vs in sorted(by.items())]
    return ", ".join(parts + sorted(other))


def _training_data(records: Records, rec: dict[str, Any], training: Closure, serving: Closure,
                   figure: dict[str, Any]) -> dict[str, Any]:
    direct = []
    for inp in rec["inputs"]:
        if inp.get("kind") != "table":
            continue
        parts = inp.get("partitions") or []
        direct.append({"table": inp["name"], "version": inp.get("version"),
                       "partitions": f"{parts[0]}..{parts[-1]} ({len(parts)})" if parts else "whole table",
                       "missing_partitions": ", ".join(inp.get("missing_partitions") or []) or None,
                       "writers": ", ".join(records.index.live_writers(inp["name"], int(inp["version"]),
                                                                       inp.get("partitions")))})
    rows = _upstream_rows(records, training, "training", exclude={rec["run_id"]})
    sources = [r for r in rows if r["source"]]
    facts = [["training input(s)", "; ".join(f"{d['table']}@v{d['version']} {d['partitions']}" for d in direct) or "-"],
             ["upstream runs", f"{len(rows)} runs in {len({r['table'] for r in rows})} tables, "
                               f"{len(sources)} of them reading no table (sources)"]]
    if training.skipped:
        facts.append(["hops not followed", f"{len(training.skipped)} (see the JSON: closure.skipped)"])
    return {
        "id": "training_data", "title": "Training data",
        "proves": "Exactly which data the model learned from: every upstream table at the Delta version the "
                  "reading run recorded, down to the runs that read no table, each with the row count, schema "
                  "hash and content digest recorded when it was written (retention verify re-checks these "
                  "against the files).",
        "facts": facts,
        "figures": [figure],
        "tables": [
            table("Inputs read by the registering run", ["table", "version", "partitions", "missing_partitions",
                                                           "writers"], direct),
            table("Upstream tables", ["depth", "table", "versions", "partitions", "runs", "rows", "schema_hashes"],
                  _table_versions(rows)),
            table("Every upstream run (table@version written, as recorded at write time)",
                  ["depth", "table", "version", "partition_key", "rows", "schema_hash", "content_digest", "read_at",
                   "status", "source", "component", "run_id"], rows),
        ],
        "closure": {"skipped": training.skipped + serving.skipped, "unrecorded": sorted(training.unrecorded)},
    }


# -- data quality -----------------------------------------------------------------------------------

def _data_quality(records: Records, training_runs: set[str], serving_runs: set[str]) -> dict[str, Any]:
    t_checks, s_checks = records.checks_of(training_runs), records.checks_of(serving_runs)
    issues = check_issue_rows(t_checks, "training") + check_issue_rows(s_checks, "serving")
    for r in issues:
        records.cited.add(r["run_id"])
    summary = check_summary_rows(t_checks, "training") + check_summary_rows(s_checks, "serving")
    held = quarantine_rows(records, training_runs, "training") + quarantine_rows(records, serving_runs, "serving")
    failed = sum(r["outcome"] == "failed" for r in issues)
    warned = sum(r["outcome"] == "warned" for r in issues)
    not_ok = []
    for side, runs in (("training", training_runs), ("serving", serving_runs)):
        for run_id in sorted(runs):
            if records.index.has(run_id) and records.index.runs.at[run_id, "status"] != "succeeded":
                not_ok.append(run_row(records, run_id, side=side, error=records.index.runs.at[run_id, "error_message"]))
    return {
        "id": "data_quality", "title": "Data quality",
        "proves": "Every declared test evaluated upstream of the training set and of the served predictions, "
                  "as recorded when each run wrote its output: which passed, which failed or warned (with the "
                  "observed value, threshold and runbook), and which rows were set aside.",
        "facts": [["declared test results", f"{len(t_checks)} upstream of the training set, {len(s_checks)} upstream "
                                            f"of the served predictions"],
                  ["failed / warned", f"{failed} failed, {warned} warned"],
                  ["runs that set rows aside or missed inputs", str(len(held))]],
        "tables": [
            table("Failures and warnings upstream", ["side", "component", "partition_key", "check", "outcome",
                                                     "blocking", "observed", "threshold", "failing_rows", "run_id",
                                                     "runbook"], issues),
            table("Every declared test upstream (counts of results)", ["side", "component", "check", "evaluated",
                                                                       "passed", "failed", "warned", "severity",
                                                                       "blocking", "description"], summary),
            table("Quarantined, rejected and missing input", ["side", "component", "partition_key", "quarantined_rows",
                                                              "quarantine", "rejected_rows", "rejected",
                                                              "missing_input_partitions", "run_id"], held),
            table("Upstream runs that did not succeed", ["side", "component", "partition_key", "status", "error",
                                                         "run_id"], not_ok),
        ],
    }


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


def _performance(records: Records, name: str, version: str, consumers: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = _span([c["day"] for c in consumers])
    components = sorted({c["component"] for c in consumers})
    frame = _eval_metrics(records, name, version)
    daily_rows, slice_rows, arrival = [], [], []
    metric_names: list[str] = []
    if not frame.empty:
        newest = _newest(frame)
        for r in newest["run_id"].dropna().unique():
            records.cited.add(r)
        metric_names = sorted(newest["metric"].unique())
        overall = newest[newest["slice_key"] == "all"].pivot_table(index="window_start", columns="metric",
                                                                   values="value", aggfunc="last")
        for window, r in overall.sort_index().iterrows():
            daily_rows.append({"day": pd.Timestamp(window).date(), **{m: r.get(m) for m in _DAILY if m in r}})
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
            slice_rows.append(row)
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
    if first is None:
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


# -- drift ---------------------------------------------------------------------------------------------

def drift_rows_for(records: Records, frame: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """(per table and day: verdicts and report; per table: summary) from whole-table drift rows."""
    from tracelake.monitors.compliance.evidence import file_evidence, resolve_report_path

    per_day, summary = [], []
    if frame.empty:
        return per_day, summary
    for (tbl, day), g in frame.groupby(["table_name", "day"], sort=True):
        cols = g[g["kind"] != "multivariate"] if "kind" in g else g
        drifted = sorted(cols.loc[cols["drifted"].fillna(False).astype(bool), "column_name"])
        disagree = sorted(cols.loc[cols["verdicts_agree"].eq(False), "column_name"]) if "verdicts_agree" in cols else []
        multi = g[g["kind"] == "multivariate"] if "kind" in g else g.iloc[0:0]
        recorded = sorted(set(g["report_html"].dropna()))
        reports = [resolve_report_path(records.lake.settings.home, r) for r in recorded]
        evidence = file_evidence(reports[0]) if reports else {}
        for r in g["_tl_run_id"].dropna().unique():
            records.cited.add(r)
        per_day.append({
            "table": tbl, "day": day, "reference": g["reference"].iloc[0], "columns": len(cols),
            "drifted_columns": ", ".join(drifted) or None, "verdict": "DRIFT" if drifted else "no drift",
            "max_score": plain(cols["score"].max()),
            "multivariate_auc": plain(multi["score"].iloc[0]) if len(multi) else None,
            "evidently_disagrees_on": ", ".join(disagree) or None,
            "evidently_report": reports[0] if reports else None,
            "evidently_report_recorded": recorded[0] if recorded else None,
            "report_sha256": evidence.get("sha256"), "report_state": evidence.get("state"),
            "drift_run": g["_tl_run_id"].iloc[0]})
    for tbl, rows in pd.DataFrame(per_day).groupby("table"):
        drifted_cols: dict[str, int] = {}
        for text in rows["drifted_columns"].dropna():
            for c in text.split(", "):
                drifted_cols[c] = drifted_cols.get(c, 0) + 1
        summary.append({"table": tbl, "days": len(rows), "days_with_drift": int((rows["verdict"] == "DRIFT").sum()),
                        "columns_drifted": ", ".join(f"{c} ({n} d)" for c, n in sorted(drifted_cols.items())) or None,
                        "first_day": rows["day"].min(), "last_day": rows["day"].max()})
    return per_day, summary


def _drift(records: Records, name: str, version: str) -> dict[str, Any]:
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


# -- incidents -----------------------------------------------------------------------------------------

def _incidents(records: Records, components: set[str], first: date | None, last: date | None) -> dict[str, Any]:
    rows = []
    if first is not None:
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


# -- changes -------------------------------------------------------------------------------------------

def _changes(records: Records, model: dict[str, Any], previous: dict[str, Any] | None, training: Closure,
             perf_now: dict[str, Any]) -> dict[str, Any]:
    base = {"id": "changes", "title": "Changes against the previous version",
            "proves": "What is different from the version this one replaced: the data versions it learned from, "
                      "the code, the configuration, the libraries and the recorded metrics - all from the two "
                      "registering runs' records."}
    if previous is None:
        return {**base, "facts": [["previous version", "none: this is the first registered version of "
                                                        f"{model['name']}"]], "tables": []}
    index = records.index
    records.cited.add(previous["run_id"])
    d = diff_runs(records.lake, previous["run_id"], model["run_id"], index)
    rows = []
    for section in ("code", "config", "inputs", "libraries"):
        for key, val in d[section].items():
            rows.append({"what": section, "item": key, "previous": val.get("a"), "this": val.get("b")})
    for key, val in d["metrics"].items():
        rows.append({"what": "training metric", "item": key, "previous": val.get("a"), "this": val.get("b"),
                     "delta": val.get("delta")})
    prev_closure = upstream_closure(index, [previous["run_id"]])
    now_tables = _table_versions(_upstream_rows(records, training, "training", exclude={model["run_id"]}))
    prev_tables = _table_versions(_upstream_rows(records, prev_closure, "training", exclude={previous["run_id"]}))
    prev_by = {t["table"]: t for t in prev_tables}
    data_rows = []
    for t in now_tables:
        p = prev_by.get(t["table"], {})
        data_rows.append({"table": t["table"], "previous_partitions": p.get("partitions"),
                          "this_partitions": t["partitions"], "previous_versions": p.get("versions"),
                          "this_versions": t["versions"], "previous_rows": p.get("rows"), "this_rows": t["rows"],
                          "schema_changed": bool(p) and p.get("schema_hashes") != t["schema_hashes"]})
    prev_serving = _serving(records, previous["name"], previous["version"])
    prev_perf = _mean_metrics(records, previous["name"], previous["version"])
    now_perf = _mean_metrics(records, model["name"], model["version"])
    perf_rows = [{"metric": m, "previous": prev_perf.get(m), "this": now_perf.get(m),
                  "delta": (now_perf[m] - prev_perf[m]) if m in now_perf and m in prev_perf else None}
                 for m in sorted(set(prev_perf) | set(now_perf))]
    return {**base,
            "facts": [["previous version", f"{previous['name']} v{previous['version']} (registered by run "
                                           f"{previous['run_id']}, served {len(prev_serving)} runs)"],
                      ["changed", ", ".join(s for s in ("code", "config", "inputs", "libraries", "metrics") if d[s])
                       or "nothing recorded differs"]],
            "tables": [
                table("Registering runs compared (code, config, direct inputs, libraries, training metrics)",
                      ["what", "item", "previous", "this", "delta"], rows),
                table("Training data compared (upstream tables)", ["table", "previous_partitions", "this_partitions",
                                                                   "previous_versions", "this_versions",
                                                                   "previous_rows", "this_rows", "schema_changed"],
                      data_rows),
                table("Evaluation in service compared (mean of daily values, slice all)",
                      ["metric", "previous", "this", "delta"], perf_rows),
            ]}


def _mean_metrics(records: Records, name: str, version: str) -> dict[str, float]:
    frame = _eval_metrics(records, name, version)
    if frame.empty:
        return {}
    newest = _newest(frame)
    overall = newest[(newest["slice_key"] == "all") & newest["metric"].isin(["recall", "precision", "roc_auc",
                                                                             "log_loss", "prediction_bias",
                                                                             "label_coverage"])]
    return {m: float(g["value"].mean()) for m, g in overall.groupby("metric")}


# -- the report ----------------------------------------------------------------------------------------

def build_model_report(records: Records, name: str, version: str | None = None, *,
                       integrity: bool = True) -> dict[str, Any]:
    """The JSON model of the report (see the module docstring); raises ReportInputError early."""
    model = resolve_model_version(records, name, version)
    name, version = model["name"], model["version"]
    index = records.index
    rec = records.record(model["run_id"])
    consumers = _serving(records, name, version)
    training = upstream_closure(index, [model["run_id"]])
    serving = upstream_closure(index, [c["run_id"] for c in consumers], follow_models=False)
    serving_only = serving.runs - training.runs
    for run_id in training.runs | serving_only:
        if index.has(run_id):
            records.cited.add(run_id)
    versions = list(records.registered_versions(name))
    position = next(i for i, v in enumerate(versions) if v["version"] == version)
    previous = versions[position - 1] if position > 0 else None
    later = versions[position + 1] if position + 1 < len(versions) else None
    first_served, last_served = _span([c["day"] for c in consumers])
    train_first, _ = _span([records.run_days.get(r) for r in training.runs if r in records.run_days.index])
    figure = lineage_figure(records, f"Lineage of {name} v{version}: training side and serving side",
                            {"training": training, "serving": Closure(
                                depth={r: d for r, d in serving.depth.items() if r in serving_only},
                                edges=serving.edges)},
                            model_label=f"model {name} v{version}", registrar=model["run_id"])
    performance = _performance(records, name, version, consumers)
    components = {index.runs.at[r, "component"] for r in training.runs | serving.runs if index.has(r)}
    sections = [
        _identity(records, model, rec, records.lake.settings.mlflow_ui_url),
        _training_data(records, rec, training, serving, figure),
        _data_quality(records, training.runs, serving_only),
        performance,
        _drift(records, name, version),
        _incidents(records, components, train_first or first_served, last_served or train_first),
        _changes(records, model, previous, training, performance),
    ]
    checks = integrity_checks(records) if integrity else None
    heads = records.chain_heads()
    if checks is not None:
        sections.append(integrity_section(checks, heads))
    status = "in service" if consumers and later is None else "replaced by v" + later["version"] if later else \
        "registered, not yet served"
    return {
        "kind": "model",
        "title": f"Model report: {name} v{version}",
        "subject": {"model": name, "version": version, "registering_run": model["run_id"]},
        "summary": [
            ["model", f"{name} v{version} ({status})"],
            ["trained on", "; ".join(f"{i['name']}@v{i.get('version')}" for i in rec["inputs"]
                                     if i.get("kind") == "table")],
            ["served", f"{first_served} .. {last_served}, {len(consumers)} runs" if consumers else "not yet"],
            ["upstream failures", f"{sum(r['outcome'] == 'failed' for r in sections[2]['tables'][0]['rows'])} failed, "
                                  f"{sum(r['outcome'] == 'warned' for r in sections[2]['tables'][0]['rows'])} warned "
                                  "declared tests"],
            ["integrity", "audit verify " + ("OK" if checks and checks["audit_verify"]["ok"] else
                                             "PROBLEMS" if checks else "not run")],
        ],
        "generated_at": now_utc().isoformat(),
        "lakehouse": records.lake.settings.home,
        "sections": sections,
        "built_from": {"chain_heads": heads},
    }
