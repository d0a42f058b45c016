"""The regulator's question: which data and which model produced these decisions, and did
anything fail upstream?

For the rows of ``TABLE`` matching ``--where`` (at ``--as-of``, a version or a time; default the
newest version), from the records alone plus reads of the exact Delta versions they name:

- the model version(s) the writing runs recorded loading, the run that registered each and the
  training set@version it learned from;
- every upstream run, row by row where keys are declared (the lineage trace), with the exact
  inputs it read (table@version and partitions, model versions);
- the feature values the model saw: the keyed input rows of the model-loading runs, read with
  delta-rs at the versions those runs pinned;
- every declared test that failed or warned anywhere upstream.

No Spark: a trace over three simulated years answers in seconds (benchmarks/trace_latency.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from tracelake.lineage.layout import RESERVED_COLUMNS, RUN_ID_COLUMN
from tracelake.lineage.query.slices import SliceError, key_strings, resolve_as_of
from tracelake.lineage.query.trace import LineageWalker, TraceResult, trace
from tracelake.monitors.compliance.common import check_issue_rows, table
from tracelake.monitors.compliance.records import Records, ReportInputError, now_utc, plain

__all__ = ["build_decision_report", "select_decisions"]


def select_decisions(records: Records, walker: LineageWalker, table_name: str, where: str,
                     as_of: str | int | None) -> tuple[Any, pa.Table]:
    """The table version and the selected rows (every column), or one clear line."""
    try:
        at = walker.reader.table_at(table_name, resolve_as_of(as_of))
        schema = pa.schema(DeltaTable(at.path, version=at.version).schema().to_arrow())
        rows = walker.reader.select(at, where, schema.names)
    except SliceError as exc:
        raise ReportInputError(str(exc)) from None
    if rows.num_rows == 0:
        raise ReportInputError(f"no rows of {table_name}@v{at.version} match {where!r}; nothing to explain")
    return at, rows


def _inputs_text(rec: dict[str, Any]) -> str:
    parts = []
    for i in rec["inputs"]:
        if i.get("kind") == "model":
            parts.append(f"model {i['name']} v{i.get('model_version')}")
        else:
            p = i.get("partitions") or []
            span = "" if not p else f" [{p[0]}]" if len(p) == 1 else f" [{p[0]}..{p[-1]} ({len(p)})]"
            missing = i.get("missing_partitions") or []
            parts.append(f"{i['name']}@v{i.get('version')}{span}" + (f" missing {len(missing)}" if missing else ""))
    return "; ".join(parts)


def _models(records: Records, result: TraceResult) -> list[dict[str, Any]]:
    index = records.index
    out = []
    for node in result.nodes.values():
        if node.kind != "model":
            continue
        _, name, version = node.id.split(":", 2)
        registrar = index.model_registrar(name, version)
        trained_on, trained_at = None, None
        if registrar and index.has(registrar):
            rec = records.record(registrar)
            trained_on = "; ".join(f"{i['name']}@v{i.get('version')}" + (
                f" [{(i.get('partitions') or ['?'])[0]}..{(i.get('partitions') or ['?'])[-1]}]"
                if i.get("partitions") else "") for i in rec["inputs"] if i.get("kind") == "table")
            trained_at = rec.get("started_at")
        users = [e.child for e in result.edges if e.parent == node.id and e.via == "model"]
        out.append({"model": f"{name} v{version}", "registered_by": registrar, "trained_on": trained_on,
                    "trained_at": trained_at, "mlflow_run_id": node.mlflow_run_id,
                    "used_by_runs": ", ".join(sorted(users))})
    return sorted(out, key=lambda m: m["model"])


def _feature_tables(walker: LineageWalker, selected: pa.Table, max_rows: int) -> tuple[list[dict], list[dict]]:
    """Per keyed input of the model-loading runs that wrote the selected rows: the input rows those
    keys reach, read at the version the run pinned. Returns (tables, reads)."""
    index = walker.index
    tables: dict[str, dict[str, Any]] = {}
    reads: list[dict[str, Any]] = []
    ids = selected.column(RUN_ID_COLUMN)
    for run_id in sorted(pc.unique(ids).to_pylist()):
        if not index.has(run_id):
            continue
        rec = index.record(run_id)
        if not any(i.get("kind") == "model" for i in rec["inputs"]):
            continue
        keys = rec["lineage_keys"]
        mine = selected.filter(pc.equal(ids, run_id))
        for inp in rec["inputs"]:
            pairs = keys.get(inp["name"]) if inp.get("kind") == "table" else None
            if not pairs or any(p.out not in mine.column_names for p in pairs):
                continue
            values = pc.unique(key_strings(mine, [p.out for p in pairs]))
            names = pa.schema(DeltaTable(inp["path"], version=int(inp["version"])).schema().to_arrow()).names
            found = walker.reader.rows(inp["path"], int(inp["version"]), names, partitions=inp.get("partitions"),
                                       key_columns=[p.inp for p in pairs], key_values=values)
            label = f"{inp['name']}@v{inp['version']}"
            reads.append({"run_id": run_id, "input": label,
                          "keys": ", ".join(f"{p.out}={p.inp}" if p.out != p.inp else p.out for p in pairs),
                          "rows_selected": len(values), "rows_found": found.num_rows})
            wanted = [c for c in names if c not in RESERVED_COLUMNS] + [RUN_ID_COLUMN]
            t = tables.setdefault(label, {"input": label, "columns": wanted, "rows": [], "found": 0})
            t["found"] += found.num_rows
            room = max(0, max_rows - len(t["rows"]))
            t["rows"] += [plain(r) for r in found.select([c for c in wanted if c in found.column_names])
                          .slice(0, room).to_pylist()]
    out = [table(f"Feature values: {t['input']} (first {len(t['rows'])} of {t['found']} rows, at the version the "
                 "scoring run pinned)", t["columns"], t["rows"]) for t in tables.values()]
    return out, reads


@dataclass(frozen=True)
class _Question:
    """Which decisions are asked about: the table, the predicate and the version they were read at."""

    table: str
    where: str
    as_of: str | int | None
    version: int


def build_decision_report(records: Records, table_name: str, where: str, *, as_of: str | int | None = None,
                          max_rows: int = 50) -> dict[str, Any]:
    """The JSON model of the answer (see the module docstring); bad input raises ReportInputError
    before the trace starts."""
    lake = records.lake
    walker = LineageWalker(lake, index=records.index)
    at, selected = select_decisions(records, walker, table_name, where, as_of)
    question = _Question(table_name, where, as_of, at.version)
    result = trace(lake, table_name, where, as_of=at.version, walker=walker)
    run_nodes = sorted(result.runs(), key=lambda n: (n.depth, n.component or "", n.partition_key or "", n.id))
    for n in run_nodes:
        records.cited.add(n.id)
    models = _models(records, result)
    upstream = _upstream(records, run_nodes)
    issues = _issues(records, result, run_nodes)
    feature_tables, reads = _feature_tables(walker, selected, max_rows)
    writers = sorted(set(selected.column(RUN_ID_COLUMN).to_pylist()))
    heads = records.chain_heads()
    sections = [
        _question_section(question, selected, writers, max_rows),
        _model_section(models),
        _lineage_section(result, upstream),
        _features_section(feature_tables, reads),
        _checks_section(issues),
        _integrity_section(heads),
    ]
    return {
        "kind": "decision", "title": f"Decision report: {table_name} where {where}",
        "subject": {"table": table_name, "where": where, "as_of": as_of, "version": at.version},
        "summary": _summary(question, selected, writers, models, run_nodes, issues),
        "answer": {"table": table_name, "version": at.version, "rows": selected.num_rows, "writers": writers,
                   "models": models, "upstream_runs": [u["run_id"] for u in upstream],
                   "failed_or_warned": [{k: r[k] for k in ("component", "partition_key", "check", "outcome", "run_id")}
                                        for r in issues]},
        "generated_at": now_utc().isoformat(), "lakehouse": lake.settings.home,
        "sections": sections, "built_from": {"chain_heads": heads},
    }


def _upstream(records: Records, run_nodes: list[Any]) -> list[dict[str, Any]]:
    """Every run the decisions descend from, nearest first, with the exact inputs it read."""
    index = records.index
    upstream = []
    for n in run_nodes:
        rec = index.record(n.id) if index.has(n.id) else None
        upstream.append({"depth": n.depth, "component": n.component, "partition_key": n.partition_key,
                         "status": n.status, "output": f"{n.table}@v{n.version}" if n.version is not None else None,
                         "rows_in_answer": n.rows, "exact_inputs": _inputs_text(rec) if rec else None,
                         "code": (rec.get("source_hash") or "")[:12] if rec else None,
                         "failed_checks": ", ".join(c["check"] for c in n.checks) or None, "run_id": n.id})
    return upstream


def _issues(records: Records, result: TraceResult, run_nodes: list[Any]) -> list[dict[str, Any]]:
    """Declared tests that failed or warned on the upstream runs, with the depth of each run."""
    issues = check_issue_rows(records.checks_of({n.id for n in run_nodes}))
    for r in issues:
        node = result.nodes.get(r["run_id"])
        r["depth"] = node.depth if node else None
    return issues


def _summary(question: _Question, selected: pa.Table, writers: list[str], models: list[dict[str, Any]],
             run_nodes: list[Any], issues: list[dict[str, Any]]) -> list[list[str]]:
    as_of = question.as_of
    return [
        ["question", f"{question.table} where {question.where}" + (f" as of {as_of}" if as_of is not None else "")],
        ["rows", f"{selected.num_rows} rows of {question.table}@v{question.version}, written by {len(writers)} run(s)"],
        ["model", "; ".join(f"{m['model']} trained on {m['trained_on']}" for m in models) or
                  "no model recorded upstream"],
        ["upstream", f"{len(run_nodes)} runs"],
        ["failed or warned upstream", "; ".join(f"{r['component']} {r['partition_key']} {r['check']} "
                                                f"({r['outcome']}, run {r['run_id']})" for r in issues) or "nothing"],
    ]


def _question_section(question: _Question, selected: pa.Table, writers: list[str], max_rows: int) -> dict[str, Any]:
    shown = [c for c in selected.column_names if c not in RESERVED_COLUMNS] + [RUN_ID_COLUMN]
    decisions = [plain(r) for r in selected.select(shown).slice(0, max_rows).to_pylist()]
    as_of = question.as_of
    return {"id": "question", "title": "The question",
            "proves": "Exactly which decisions are explained: the rows of the table version named here that match "
                      "the predicate, with the runs that wrote them.",
            "facts": [["table", f"{question.table}@v{question.version}" + (f" (as of {as_of})" if as_of is not None
                                                                           else " (newest version)")],
                      ["predicate", question.where], ["rows selected", str(selected.num_rows)],
                      ["written by", ", ".join(writers)]],
            "tables": [table(f"The decisions (first {min(max_rows, selected.num_rows)} of {selected.num_rows} rows)",
                             shown, decisions)]}


def _model_section(models: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "model", "title": "Model and training data",
            "proves": "Which model version produced these rows - the version each writing run recorded loading - "
                      "the run that registered it and the training set version it learned from.",
            "facts": [["model versions", ", ".join(m["model"] for m in models) or "none"]],
            "tables": [table("Models upstream", ["model", "trained_on", "registered_by", "trained_at",
                                                 "mlflow_run_id", "used_by_runs"], models)]}


def _lineage_section(result: TraceResult, upstream: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "lineage", "title": "Every upstream run and its exact inputs",
            "proves": "Every run the rows descend from, found row by row through the declared keys and through the "
                      "model's registration, each with the exact table versions, partitions and model versions it "
                      "read.",
            "facts": [["upstream runs", str(len(upstream))], ["edges", str(len(result.edges))]],
            "figures": [_figure(result)],
            "tables": [table("Upstream runs (depth 0 wrote the decisions)", ["depth", "component", "partition_key",
                                                                             "status", "output", "rows_in_answer",
                                                                             "exact_inputs", "code", "failed_checks",
                                                                             "run_id"], upstream)]}


def _features_section(feature_tables: list[dict[str, Any]], reads: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "features", "title": "What the model saw",
            "proves": "The input rows the model scored for these decisions, read from the table versions the "
                      "scoring runs pinned (not today's data).",
            "facts": [["reads", "; ".join(f"{r['input']} by {r['run_id']}: {r['rows_found']} rows for "
                                          f"{r['rows_selected']} keys ({r['keys']})" for r in reads) or
                      "no keyed input on the model-loading runs"]],
            "tables": feature_tables}


def _checks_section(issues: list[dict[str, Any]]) -> dict[str, Any]:
    bad_runs = sorted({r["run_id"] for r in issues})
    return {"id": "checks", "title": "Failed or warned upstream",
            "proves": "Every declared test that failed or warned on any run these decisions descend from.",
            "facts": [["failed", str(sum(r["outcome"] == "failed" for r in issues))],
                      ["warned", str(sum(r["outcome"] == "warned" for r in issues))],
                      ["runs with issues", ", ".join(bad_runs) or "none"]],
            "tables": [table("Declared tests that failed or warned", ["depth", "component", "partition_key", "check",
                                                                      "outcome", "blocking", "observed", "threshold",
                                                                      "run_id", "runbook"], issues)]}


def _integrity_section(heads: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "integrity", "title": "Integrity",
            "proves": "Which records the answer was read from: the head of every audit chain when it was built "
                      "(`tracelake audit verify` re-checks the chains).",
            "tables": [table("Audit chain heads", ["table", "journal_id", "records", "chain_seq", "record_hash"],
                             heads)]}


def _figure(result: TraceResult) -> dict[str, Any]:
    nodes, edges = [], []
    shown = set()
    limit = 120
    for n in sorted(result.nodes.values(), key=lambda n: (n.depth, n.id))[:limit]:
        shown.add(n.id)
        if n.kind == "model":
            nodes.append({"id": n.id, "label": n.label, "state": "model", "kind": "model"})
            continue
        failed = [c for c in n.checks if c.get("severity") != "warn"]
        state = "failed" if failed else "warned" if n.checks else "selected" if n.depth == 0 else "ok"
        label = [n.component or n.label, n.partition_key or "",
                 f"{n.table}@v{n.version}" if n.version is not None else ""]
        if n.checks:
            label.append(", ".join(c["check"] for c in n.checks))
        nodes.append({"id": n.id, "label": "\n".join(x for x in label if x), "state": state, "kind": "run"})
    for e in result.edges:
        if e.child in shown and e.parent in shown:
            edges.append({"from": e.parent, "to": e.child, "label": e.input,
                          "style": "model" if e.via in ("model", "registered") else None})
    title = "Lineage of the selected decisions, run by run (purple: the runs that wrote them)"
    if len(result.nodes) > limit:
        title += f"; the {limit} nearest of {len(result.nodes)} nodes are drawn, all are listed below"
    return {"kind": "graph", "title": title, "nodes": nodes, "edges": edges}
