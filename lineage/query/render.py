"""Renderings of lineage results for people and reports: a tree, Mermaid and Graphviz DOT text."""

from __future__ import annotations

from collections.abc import Callable

from tracelake.lineage.cli_support import plural
from tracelake.lineage.query.trace import TraceEdge, TraceNode, TraceResult

__all__ = ["trace_dot", "trace_mermaid", "trace_tree"]


def _describe(node: TraceNode) -> str:
    if node.kind == "model":
        return node.label + (f"  (MLflow run {node.mlflow_run_id})" if node.mlflow_run_id else "")
    if node.kind == "unrecorded":
        return node.label
    text = f"{node.label}  run {node.id}  {node.status}"
    if node.table is not None and node.version is not None:
        text += f"  -> {node.table}@v{node.version}"
    if node.rows is not None:
        text += f"  [{plural(node.rows, 'row')}]"
    for check in node.checks:
        text += f"  !{check['severity'].upper()} {check['check']} (observed {check['observed']}, threshold {check['threshold']})"
    return text


def _edge_label(edge: TraceEdge) -> str:
    if edge.via == "rows":
        return f"{edge.input} ({plural(edge.rows or 0, 'row')} by key)"
    if edge.via == "run":
        return f"{edge.input} (run level)"
    return edge.input if edge.via == "model" else "registered by"


def trace_tree(result: TraceResult, max_siblings: int | None = 3) -> str:
    """Indented tree from the slice to the sources. Runs of one component reached through the
    same input are collapsed after ``max_siblings`` (None: show all)."""
    lines = [f"{result.table}@v{result.version} where {result.predicate}: {plural(result.rows or 0, 'row')}"]
    if not result.roots:
        lines.append("  (no rows match; nothing to trace)")
        return "\n".join(lines)
    children: dict[str, list[TraceEdge]] = {}
    for e in result.edges:
        children.setdefault(e.child, []).append(e)
    printed: set[str] = set()

    def walk(node_id: str, prefix: str, last: bool, edge: TraceEdge | None) -> None:
        node = result.nodes[node_id]
        branch = "└─ " if last else "├─ "
        via = f"{_edge_label(edge)} <- " if edge is not None else ""
        seen = node_id in printed
        lines.append(f"{prefix}{branch}{via}{_describe(node)}{'  (see above)' if seen else ''}")
        if seen:
            return
        printed.add(node_id)
        kids = sorted(children.get(node_id, []), key=lambda e: (e.via == "model", e.input, e.parent))
        shown: list[TraceEdge | str] = []
        groups: dict[tuple[str, str | None], list[TraceEdge]] = {}
        for e in kids:
            groups.setdefault((e.input.split("@")[0], result.nodes[e.parent].component), []).append(e)
        for (_, component), group in groups.items():
            if max_siblings is not None and len(group) > max_siblings + 1:
                shown += group[:max_siblings]
                rest = group[max_siblings:]
                parts = sorted(p for p in (result.nodes[e.parent].partition_key for e in rest) if p)
                span = f" ({parts[0]} .. {parts[-1]})" if parts else ""
                rows = sum(result.nodes[e.parent].rows or 0 for e in rest)
                shown.append(f"… {len(rest)} more {component} {'run' if len(rest) == 1 else 'runs'}{span}, "
                             f"{plural(rows, 'row')} - see --full or --json")
            else:
                shown += group
        for i, item in enumerate(shown):
            child_prefix = prefix + ("   " if last else "│  ")
            if isinstance(item, str):
                lines.append(f"{child_prefix}{'└─ ' if i == len(shown) - 1 else '├─ '}{item}")
            else:
                walk(item.parent, child_prefix, i == len(shown) - 1, item)

    for i, root in enumerate(result.roots):
        walk(root, "", i == len(result.roots) - 1, None)
    return "\n".join(lines)


def _graph(result: TraceResult, node_fmt: Callable[[str, TraceNode], str], edge_fmt: Callable[[str, str, str], str]) -> list[str]:
    ids = {nid: f"n{i}" for i, nid in enumerate(result.nodes)}
    out = [node_fmt(ids[nid], node) for nid, node in result.nodes.items()]
    for e in result.edges:
        out.append(edge_fmt(ids[e.parent], ids[e.child], _edge_label(e)))
    return out


def _short_label(node: TraceNode) -> str:
    if node.kind != "run":
        return node.label
    parts = [node.component or "", node.partition_key or "", f"run {node.id[-8:]}"]
    if node.rows is not None:
        parts.append(plural(node.rows, "row"))
    if node.checks:
        parts.append("failed: " + ", ".join(c["check"] for c in node.checks))
    return "\\n".join(p for p in parts if p)


def trace_mermaid(result: TraceResult) -> str:
    """Mermaid flowchart, data flowing left to right (sources first)."""
    def node_fmt(nid: str, node: TraceNode) -> str:
        label = _short_label(node).replace("\\n", "<br/>").replace('"', "'")
        shape = ('(["', '"])') if node.kind == "model" else ('["', '"]')
        return f"    {nid}{shape[0]}{label}{shape[1]}"

    body = _graph(result, node_fmt, lambda a, b, label: f'    {a} -->|"{label}"| {b}')
    return "\n".join(["flowchart LR", *body])


def trace_dot(result: TraceResult) -> str:
    """Graphviz DOT (render with `dot -Tpng`)."""
    def node_fmt(nid: str, node: TraceNode) -> str:
        shape = "ellipse" if node.kind == "model" else "box"
        color = ', color="red"' if node.checks or node.status == "failed" else ""
        return f'  {nid} [shape={shape}, label="{_short_label(node)}"{color}];'

    body = _graph(result, node_fmt, lambda a, b, label: f'  {a} -> {b} [label="{label}"];')
    return "\n".join(["digraph lineage {", "  rankdir=LR;", *body, "}"])
