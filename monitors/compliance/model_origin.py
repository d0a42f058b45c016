"""The model dossier's sections on how a version came to be: identity, training data and the data
quality upstream of it.

Identity is the registering run's record (code, configuration as recorded, trigger, MLflow
links); training data is the run-level closure upstream of that run, table@version by
table@version as recorded at write time; data quality is every declared test upstream of the
training set and of the served predictions.
"""

from __future__ import annotations

import json
from collections.abc import Set
from typing import Any

from tracelake.monitors.compliance.closure import Closure
from tracelake.monitors.compliance.common import check_issue_rows, check_summary_rows, quarantine_rows, run_row, table
from tracelake.monitors.compliance.lineage_graph import version_ranges
from tracelake.monitors.compliance.records import Records, plain

__all__ = ["data_quality_section", "identity_section", "table_versions", "training_data_section", "upstream_rows"]


# -- identity ------------------------------------------------------------------------------------

def identity_section(records: Records, model: dict[str, Any], rec: dict[str, Any], mlflow_ui: str) -> dict[str, Any]:
    name, version = model["name"], model["version"]
    config = json.loads(rec.get("config_json") or "{}")
    registered: dict[str, Any] = next((m for m in rec["models"] if m["role"] == "registered" and m["name"] == name
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


def upstream_rows(records: Records, closure: Closure, side: str,
                  exclude: Set[str] = frozenset()) -> list[dict[str, Any]]:
    """One row per recorded run of ``closure`` (but ``exclude``): the table@version it wrote and
    the versions of it that were read downstream, nearest first."""
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


def table_versions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _direct_inputs(records: Records, rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The tables the registering run read, with the runs whose rows were live in what it read."""
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
    return direct


def training_data_section(records: Records, rec: dict[str, Any], training: Closure, serving: Closure,
                          figure: dict[str, Any]) -> dict[str, Any]:
    direct = _direct_inputs(records, rec)
    rows = upstream_rows(records, training, "training", exclude={rec["run_id"]})
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
                  table_versions(rows)),
            table("Every upstream run (table@version written, as recorded at write time)",
                  ["depth", "table", "version", "partition_key", "rows", "schema_hash", "content_digest", "read_at",
                   "status", "source", "component", "run_id"], rows),
        ],
        "closure": {"skipped": training.skipped + serving.skipped, "unrecorded": sorted(training.unrecorded)},
    }


# -- data quality -----------------------------------------------------------------------------------

def data_quality_section(records: Records, training_runs: set[str], serving_runs: set[str]) -> dict[str, Any]:
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
