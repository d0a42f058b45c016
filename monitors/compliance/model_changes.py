"""The model dossier's comparison with the version this one replaced: the two registering runs'
records (code, configuration, inputs, libraries, training metrics), the upstream data each
learned from, and their evaluation in service."""

from __future__ import annotations

from typing import Any

from tracelake.lineage.query.history import diff_runs
from tracelake.monitors.compliance.closure import Closure, upstream_closure
from tracelake.monitors.compliance.common import table
from tracelake.monitors.compliance.model_origin import table_versions, upstream_rows
from tracelake.monitors.compliance.model_service import mean_metrics, serving_runs
from tracelake.monitors.compliance.records import Records

__all__ = ["changes_section"]

_BASE = {"id": "changes", "title": "Changes against the previous version",
         "proves": "What is different from the version this one replaced: the data versions it learned from, "
                   "the code, the configuration, the libraries and the recorded metrics - all from the two "
                   "registering runs' records."}


def changes_section(records: Records, model: dict[str, Any], previous: dict[str, Any] | None,
                    training: Closure) -> dict[str, Any]:
    if previous is None:
        return {**_BASE, "facts": [["previous version", "none: this is the first registered version of "
                                                         f"{model['name']}"]], "tables": []}
    records.cited.add(previous["run_id"])
    d = diff_runs(records.lake, previous["run_id"], model["run_id"], records.index)
    rows = _record_rows(d)
    data_rows = _data_rows(records, model, previous, training)
    prev_serving = serving_runs(records, previous["name"], previous["version"])
    prev_perf = mean_metrics(records, previous["name"], previous["version"])
    now_perf = mean_metrics(records, model["name"], model["version"])
    perf_rows = [{"metric": m, "previous": prev_perf.get(m), "this": now_perf.get(m),
                  "delta": (now_perf[m] - prev_perf[m]) if m in now_perf and m in prev_perf else None}
                 for m in sorted(set(prev_perf) | set(now_perf))]
    return {**_BASE,
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


def _record_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The differences between the two registering runs' records, section by section."""
    rows = []
    for section in ("code", "config", "inputs", "libraries"):
        for key, val in d[section].items():
            rows.append({"what": section, "item": key, "previous": val.get("a"), "this": val.get("b")})
    for key, val in d["metrics"].items():
        rows.append({"what": "training metric", "item": key, "previous": val.get("a"), "this": val.get("b"),
                     "delta": val.get("delta")})
    return rows


def _data_rows(records: Records, model: dict[str, Any], previous: dict[str, Any],
               training: Closure) -> list[dict[str, Any]]:
    """Per upstream table of this version: partitions, versions and rows against the previous one's."""
    prev_closure = upstream_closure(records.index, [previous["run_id"]])
    now_tables = table_versions(upstream_rows(records, training, "training", exclude={model["run_id"]}))
    prev_tables = table_versions(upstream_rows(records, prev_closure, "training", exclude={previous["run_id"]}))
    prev_by = {t["table"]: t for t in prev_tables}
    data_rows = []
    for t in now_tables:
        p = prev_by.get(t["table"], {})
        data_rows.append({"table": t["table"], "previous_partitions": p.get("partitions"),
                          "this_partitions": t["partitions"], "previous_versions": p.get("versions"),
                          "this_versions": t["versions"], "previous_rows": p.get("rows"), "this_rows": t["rows"],
                          "schema_changed": bool(p) and p.get("schema_hashes") != t["schema_hashes"]})
    return data_rows
