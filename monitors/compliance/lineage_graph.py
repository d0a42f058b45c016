"""The component-level lineage graph of a report, and how version lists are written in it.

A report's figure groups runs by (side, component): a model's dossier draws its training side and
its serving side, a period report the components that ran in the period. Each node carries its
runs' partition and version span and check outcomes; each edge the tables and versions read.
``graph_svg`` lays the figure out; this module only builds its data.
"""

from __future__ import annotations

from typing import Any

from tracelake.monitors.compliance.closure import Closure
from tracelake.monitors.compliance.records import Records

__all__ = ["lineage_figure", "version_ranges"]

_MODEL_ID = "model"


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
    group_of, groups = _groups(records, sides)
    failed_runs, warned_runs = _check_outcomes(records)
    nodes = [_node(records, g, failed_runs, warned_runs, several_sides=len(sides) > 1) for g in groups.values()]
    edges = _edges(sides, group_of, model_label)
    if model_label:
        nodes.append({"id": _MODEL_ID, "label": model_label, "state": "model", "kind": "model"})
        if registrar and registrar in group_of:
            edges.setdefault((group_of[registrar], _MODEL_ID), set()).add("registered")
    edge_rows = []
    for (src, dst), labels in sorted(edges.items()):
        edge_rows.append({"from": src, "to": dst, "label": _compact_versions(labels)})
    return {"kind": "graph", "title": title, "nodes": nodes, "edges": edge_rows}


def _check_outcomes(records: Records) -> tuple[set[str], set[str]]:
    """(runs with a failed non-warning check, runs with a warning) among every recorded check."""
    checks = records.checks
    bad = checks[~checks["passed"].astype(bool)] if not checks.empty else checks
    failed_runs = set(bad.loc[bad["severity"] != "warn", "run_id"]) if not bad.empty else set()
    warned_runs = set(bad.loc[bad["severity"] == "warn", "run_id"]) if not bad.empty else set()
    return failed_runs, warned_runs


def _groups(records: Records, sides: dict[str, Closure]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(group id of each recorded run, the groups in first-seen order); a run on two sides is drawn
    on the first."""
    index = records.index
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
            # NaN != NaN: a run without an output version reads back as NaN from pandas
            if meta["output_version"] is not None and meta["output_version"] == meta["output_version"]:
                g["versions"].append(int(meta["output_version"]))
    return group_of, groups


def _node(records: Records, g: dict[str, Any], failed_runs: set[str], warned_runs: set[str], *,
          several_sides: bool) -> dict[str, Any]:
    parts = sorted(g["parts"])
    versions = sorted(g["versions"])
    n_failed = len(set(g["runs"]) & failed_runs)
    n_warned = len(set(g["runs"]) & warned_runs)
    statuses = [records.index.runs.at[r, "status"] for r in g["runs"]]
    side = f" ({g['side']})" if several_sides else ""
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
    return {"id": g["id"], "label": "\n".join(lines),
            "state": "failed" if n_failed else "warned" if n_warned else "ok", "kind": "runs"}


def _edges(sides: dict[str, Closure], group_of: dict[str, str],
           model_label: str | None) -> dict[tuple[str, str], set[str]]:
    """(parent group, child group) -> what the child read; a model hop is drawn from the model node."""
    edges: dict[tuple[str, str], set[str]] = {}
    for closure in sides.values():
        for e in closure.edges:
            child, parent = group_of.get(e["child"]), group_of.get(e["parent"])
            if e["via"] == "model" and model_label:
                if child:
                    edges.setdefault((_MODEL_ID, child), set()).add("loaded")
                continue
            if child and parent and child != parent:
                edges.setdefault((parent, child), set()).add(e["input"])
    return edges


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
