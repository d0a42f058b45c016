"""Component history (runs over time, and where code, config or schema changed) and run diffs."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.query.runs import list_runs
from tracelake.lineage.record.audit_tables import CHECK_RESULTS

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
    (code, git commit, config, output schema, libraries, the model versions it read) with the
    details, the outcome of its declared tests, and its logged metrics - the first questions when
    a figure moves."""
    frame = list_runs(lake, component=component, since=since, until=until)
    if frame.empty:
        return []
    frame = frame.sort_values("run_id")
    tests = _tests_by_run(lake, set(frame["run_id"]))
    out, prev = [], None
    for rec in frame.to_dict("records"):
        details = _changes(prev, rec) if prev is not None else {}
        mine = tests.get(rec["run_id"], [])
        before: dict[str, str] = {t["check"]: t["result"] for t in tests.get(prev["run_id"], [])} \
            if prev is not None else {}
        flipped = [t["check"] for t in mine if t["check"] in before and before[t["check"]] != t["result"]]
        if flipped:
            details["tests"] = {"a": {c: before[c] for c in flipped},
                                "b": {t["check"]: t["result"] for t in mine if t["check"] in flipped}}
        row = {
            "run_id": rec["run_id"], "partition_key": rec.get("partition_key"), "status": rec["status"],
            "started_at": rec.get("started_at"), "seconds": _seconds(rec.get("duration_ms")),
            "output_version": rec.get("output_version"), "output_rows": rec.get("output_rows"),
            "metrics": {k: v for k, v in dict(rec.get("metrics") or {}).items() if v == v},
            "changed": list(details), "changes": details,
            "tests": {"passed": sum(t["result"] == "PASS" for t in mine),
                      "failed": [t for t in mine if t["result"] != "PASS"]},
            "error": rec.get("error_message"),
        }
        if status is None or rec["status"] == status:
            out.append(row)
        if rec["status"] in ("succeeded", "failed"):
            prev = rec
    return out


def _changes(prev: dict[str, Any], rec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What differs from the previous run, each as {"a": before, "b": after} (short text)."""
    out: dict[str, dict[str, Any]] = {}
    if rec.get("source_hash") != prev.get("source_hash"):
        out["code"] = {"a": _short_hash(prev.get("source_hash")), "b": _short_hash(rec.get("source_hash"))}
    if rec.get("git_commit") != prev.get("git_commit"):
        out["git"] = {"a": _short_hash(prev.get("git_commit")), "b": _short_hash(rec.get("git_commit"))}
    if rec.get("config_json") != prev.get("config_json"):
        ca = flatten(json.loads(prev.get("config_json") or "{}"))
        cb = flatten(json.loads(rec.get("config_json") or "{}"))
        keys = [k for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)]
        out["config"] = {"a": {k: ca.get(k) for k in keys}, "b": {k: cb.get(k) for k in keys}}
    if rec.get("output_schema_hash") and prev.get("output_schema_hash") and \
            rec["output_schema_hash"] != prev["output_schema_hash"]:
        out["schema"] = _schema_diff(prev.get("output_schema_json"), rec.get("output_schema_json"))
    la, lb = dict(prev.get("library_versions") or {}), dict(rec.get("library_versions") or {})
    libs = sorted(k for k in set(la) | set(lb) if la.get(k) != lb.get(k))
    if libs:
        out["libraries"] = {"a": {k: la.get(k) for k in libs}, "b": {k: lb.get(k) for k in libs}}
    ma, mb = _models_read(prev), _models_read(rec)
    if ma != mb:
        names = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
        out["model"] = {"a": {k: ma.get(k) for k in names}, "b": {k: mb.get(k) for k in names}}
    return out


def _short_hash(value: Any) -> str | None:
    return None if value is None else str(value)[:12]


def _models_read(rec: dict[str, Any]) -> dict[str, str]:
    inputs = rec.get("inputs")
    inputs = [] if inputs is None else list(inputs)
    return {i["name"]: f"v{i.get('model_version')}" for i in inputs if i.get("kind") == "model"}


def _tests_by_run(lake: Lakehouse, run_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """run id -> its declared tests: check, result (PASS/FAIL/WARN), observed, threshold."""
    frame = lake.store.read(CHECK_RESULTS)
    if frame.empty:
        return {}
    frame = frame[frame["run_id"].isin(run_ids)]
    out: dict[str, list[dict[str, Any]]] = {}
    for r in frame.sort_values(["run_id", "check_name"]).to_dict("records"):
        out.setdefault(r["run_id"], []).append(_test(r))
    return out


def _test(r: dict[str, Any]) -> dict[str, Any]:
    passed = bool(r.get("passed"))
    value = r.get("observed_value")
    value = None if value is None or value != value else float(value)
    result = "PASS" if passed else ("FAIL" if r.get("severity") == "error" else "WARN")
    text = r.get("observed_text")
    outcome, statistic = split_observed(text)
    return {"check": r["check_name"], "result": result,
            "observed": outcome if text else value,          # short: "390 of 390 rows fail"
            "statistic": statistic,                           # what it saw: "observed range [493.0 .. 9848.0]"
            "observed_text": text, "observed_value": value,
            "threshold": r.get("threshold_text"), "failing_rows": _int(r.get("failing_rows")),
            "blocking": bool(r.get("blocking"))}


_FAILING = re.compile(r"^(?P<count>\d+ of \d+ rows fail)(?P<rule>: .*?)?(?P<rest>(; .*)|( \(quarantined\)))?$")


def split_observed(text: str | None) -> tuple[str | None, str | None]:
    """A declared test's observation as (outcome, statistic): ``"390 of 390 rows fail: fare_amount IS
    NULL OR (...); observed range [493.0 .. 9848.0]"`` -> ``("390 of 390 rows fail", "observed range
    [493.0 .. 9848.0]")`` - the rule itself is the test's definition, not news."""
    if not text:
        return None, None
    found = _FAILING.match(text.strip())
    if not found:
        return text.strip(), None
    rest = (found.group("rest") or "").strip()
    if rest == "(quarantined)":
        return f"{found.group('count')} (quarantined)", None
    return found.group("count"), rest.removeprefix("; ").strip() or None


def _int(value: Any) -> int | None:
    return None if value is None or value != value else int(value)


def _seconds(ms: Any) -> float | None:
    return None if ms is None or ms != ms else round(float(ms) / 1000, 1)


def diff_runs(lake: Lakehouse, run_a: str, run_b: str, index: AuditIndex | None = None) -> dict[str, Any]:
    """What differs between two runs: code, config key by key, input versions, schema, metrics,
    libraries - and what the data and its declared tests say: the outcome of every test in both
    runs with what it observed (a range, a fail rate), and the output's rows."""
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
    tests = _tests_by_run(lake, {a["run_id"], b["run_id"]})
    out["tests"] = _tests_diff(tests.get(a["run_id"], []), tests.get(b["run_id"], []))
    out["data"] = _data_diff(a, b, out["tests"])
    return out


def _tests_diff(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every declared test of either run, side by side; ``changed`` when its outcome differs."""
    da, db = {t["check"]: t for t in a}, {t["check"]: t for t in b}
    rows = []
    for name in sorted(set(da) | set(db)):
        ta, tb = da.get(name), db.get(name)
        rows.append({"check": name, "a": ta, "b": tb,
                     "changed": (ta or {}).get("result") != (tb or {}).get("result")})
    # What points at a problem first: changed outcomes, then failures, then the rest.
    rows.sort(key=lambda r: (not r["changed"],
                             "FAIL" not in {(r["a"] or {}).get("result"), (r["b"] or {}).get("result")}, r["check"]))
    return rows


def _data_diff(a: dict[str, Any], b: dict[str, Any], tests: list[dict[str, Any]]) -> dict[str, Any]:
    """The output's data, compared: rows (and quarantined rows), and the statistics the declared
    tests observed in each run (e.g. the observed range of a column) where they differ."""
    ra, rb = a.get("output_rows"), b.get("output_rows")
    rows = {"a": ra, "b": rb}
    if ra is not None and rb is not None:
        rows["delta"] = int(rb) - int(ra)
        rows["change"] = None if not ra else round((int(rb) - int(ra)) / int(ra), 4)
    out: dict[str, Any] = {"rows": rows}
    qa, qb = _quarantined(a), _quarantined(b)
    if qa or qb:
        out["quarantined_rows"] = {"a": qa, "b": qb}
    observed = {}
    for t in tests:
        sa, sb = (t["a"] or {}).get("statistic"), (t["b"] or {}).get("statistic")
        if sa != sb and (sa is not None or sb is not None):
            observed[t["check"]] = {"a": sa, "b": sb}
    out["observed"] = observed
    return out


def _quarantined(rec: dict[str, Any]) -> int | None:
    value = rec.get("quarantined_rows")
    return None if value is None or value != value else int(value)


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
