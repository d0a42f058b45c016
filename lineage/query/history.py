"""Component history (runs over time, and where code, config or schema changed) and run diffs."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.query.runs import list_runs

__all__ = ["component_history", "diff_runs", "flatten"]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"a.b.c": value}."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value} if prefix else {"": value}


def component_history(lake: Lakehouse, component: str, *, since: datetime | None = None,
                      until: datetime | None = None, status: str | None = None) -> list[dict[str, Any]]:
    """Runs of one component, oldest first, each marked with what changed since the previous run
    (code, git commit, config, output schema) - the first question when a metric moves."""
    frame = list_runs(lake, component=component, since=since, until=until)
    if frame.empty:
        return []
    frame = frame.sort_values("run_id")
    out, prev = [], None
    for rec in frame.to_dict("records"):
        changes = []
        if prev is not None:
            if rec.get("source_hash") != prev.get("source_hash"):
                changes.append("code")
            if rec.get("git_commit") != prev.get("git_commit"):
                changes.append("git")
            if rec.get("config_json") != prev.get("config_json"):
                changes.append("config")
            if rec.get("output_schema_hash") and prev.get("output_schema_hash") and \
                    rec["output_schema_hash"] != prev["output_schema_hash"]:
                changes.append("schema")
        row = {
            "run_id": rec["run_id"], "partition_key": rec.get("partition_key"), "status": rec["status"],
            "started_at": rec.get("started_at"), "seconds": _seconds(rec.get("duration_ms")),
            "output_version": rec.get("output_version"), "output_rows": rec.get("output_rows"),
            "metrics": dict(rec.get("metrics") or {}), "changed": changes, "error": rec.get("error_message"),
        }
        if status is None or rec["status"] == status:
            out.append(row)
        if rec["status"] in ("succeeded", "failed"):
            prev = rec
    return out


def _seconds(ms: Any) -> float | None:
    return None if ms is None or ms != ms else round(float(ms) / 1000, 2)


def diff_runs(lake: Lakehouse, run_a: str, run_b: str, index: AuditIndex | None = None) -> dict[str, Any]:
    """What differs between two runs: code, config key by key, input versions, schema, metrics."""
    index = index or AuditIndex(lake)
    a, b = index.record(run_a), index.record(run_b)
    out: dict[str, Any] = {"a": _head(a), "b": _head(b)}
    if a["component"] != b["component"]:
        out["warning"] = f"different components: {a['component']} vs {b['component']}"
    out["code"] = {k: {"a": a.get(k), "b": b.get(k)} for k in ("code_version", "source_hash", "git_commit", "git_dirty")
                   if a.get(k) != b.get(k)}
    ca, cb = flatten(json.loads(a.get("config_json") or "{}")), flatten(json.loads(b.get("config_json") or "{}"))
    out["config"] = {k: {"a": ca.get(k), "b": cb.get(k)} for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)}
    out["inputs"] = _input_diff(a["inputs"], b["inputs"])
    out["schema"] = _schema_diff(a.get("output_schema_json"), b.get("output_schema_json"))
    ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
    out["metrics"] = {k: {"a": ma.get(k), "b": mb.get(k),
                          "delta": (mb[k] - ma[k]) if k in ma and k in mb else None}
                      for k in sorted(set(ma) | set(mb)) if ma.get(k) != mb.get(k)}
    out["libraries"] = {k: {"a": v, "b": dict(b.get("library_versions") or {}).get(k)}
                        for k, v in dict(a.get("library_versions") or {}).items()
                        if dict(b.get("library_versions") or {}).get(k) != v}
    out["output"] = {"a": _out(a), "b": _out(b)}
    return out


def _head(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: rec.get(k) for k in ("run_id", "component", "partition_key", "status", "started_at")}


def _out(rec: dict[str, Any]) -> str | None:
    if rec.get("output_version") is None:
        return None
    return f"{rec['output_table']}@v{rec['output_version']} ({rec.get('output_rows')} rows)"


def _input_key(inp: dict[str, Any]) -> str:
    return f"model {inp['name']}" if inp.get("kind") == "model" else inp["name"]


def _input_desc(inp: dict[str, Any] | None) -> str | None:
    if inp is None:
        return None
    if inp.get("kind") == "model":
        return f"v{inp.get('model_version')}"
    parts = inp.get("partitions") or []
    span = f" [{parts[0]}..{parts[-1]}]" if parts else ""
    return f"v{inp.get('version')}{span}"


def _input_diff(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, Any]:
    da, db = {_input_key(i): i for i in a}, {_input_key(i): i for i in b}
    return {k: {"a": _input_desc(da.get(k)), "b": _input_desc(db.get(k))}
            for k in sorted(set(da) | set(db)) if _input_desc(da.get(k)) != _input_desc(db.get(k))}


def _schema_diff(a: str | None, b: str | None) -> dict[str, Any]:
    fa = {f["name"]: f for f in json.loads(a)} if a else {}
    fb = {f["name"]: f for f in json.loads(b)} if b else {}
    return {
        "added": sorted(set(fb) - set(fa)),
        "removed": sorted(set(fa) - set(fb)),
        "changed": {n: {"a": fa[n], "b": fb[n]} for n in sorted(set(fa) & set(fb)) if fa[n] != fb[n]},
    }
