"""``tracelake history`` and ``tracelake diff``: a component's runs over time, and what differs
between two runs - the first questions when a figure moves."""

from __future__ import annotations

import argparse
from typing import Any

from tracelake.lineage.cli_support import emit, fmt_time, format_table, lake_for, plural, run_id, short
from tracelake.lineage.query.cli_common import STATUSES, add_span, guarded, json_command, time_span
from tracelake.lineage.query.cli_runs import RUN_HEADERS

__all__ = ["register"]


@guarded
def _history(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.history import component_history

    since, until = time_span(args)
    rows = component_history(lake_for(args), args.component, since=since, until=until, status=args.status)
    emit(args, rows, _history_text(args.component, rows) if rows else
         f"no {args.status + ' ' if args.status else ''}runs of {args.component}"
         + (" in that time span" if since or until else ""))
    return 0


def _tests_cell(tests: dict[str, Any]) -> str:
    failed = tests["failed"]
    if not failed and not tests["passed"]:
        return "-"
    if not failed:
        return f"{tests['passed']} ok"
    first = failed[0]
    more = f" +{len(failed) - 1}" if len(failed) > 1 else ""
    return f"{first['result']} {first['check']}{more}"


def _varying_metrics(rows: list[dict[str, Any]], most: int = 3) -> list[str]:
    """The logged metrics that move across these runs (a constant says nothing), most varying first."""
    values: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r["metrics"].items():
            if isinstance(v, (int, float)):
                values.setdefault(k, []).append(float(v))
    spread = {}
    for k, vs in values.items():
        if len(set(vs)) > 1:
            scale = max(abs(x) for x in vs) or 1.0
            spread[k] = (max(vs) - min(vs)) / scale
    return sorted(spread, key=lambda k: (-spread[k], k))[:most]


def _change_text(what: str, change: dict[str, Any]) -> str:
    if what == "schema":
        parts = [f"+{', +'.join(change['added'])}" if change["added"] else "",
                 f"-{', -'.join(change['removed'])}" if change["removed"] else "",
                 f"~{', ~'.join(change['changed'])}" if change["changed"] else ""]
        return "schema " + " ".join(p for p in parts if p)
    a, b = change["a"], change["b"]
    if isinstance(a, dict) or isinstance(b, dict):
        a, b = a or {}, b or {}
        keys = sorted(set(a) | set(b))
        return f"{what} " + ", ".join(f"{k} {short(a.get(k), 24)} -> {short(b.get(k), 24)}" for k in keys[:4]) \
            + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
    return f"{what} {short(a, 40)} -> {short(b, 40)}"


def _history_text(component: str, rows: list[dict[str, Any]]) -> str:
    metrics = _varying_metrics(rows)
    table = []
    for r in rows:
        row = {**r, "tests": _tests_cell(r["tests"])}
        row["metrics"] = ", ".join(f"{k}={short(r['metrics'].get(k), 8)}" for k in metrics if k in r["metrics"])
        table.append(row)
    cols = ["run_id", "partition_key", "status", "started_at", "seconds", "output_version", "output_rows", "tests"]
    if metrics:
        cols.append("metrics")
    lines = [format_table(table, cols, {"tests": 34, "metrics": 40}, RUN_HEADERS)]
    changed = [r for r in rows if r["changes"]]
    if changed:
        lines.append("changed since the previous run:")
        for r in changed:
            what = "; ".join(_change_text(k, v) for k, v in r["changes"].items())
            lines.append(f"  {r['partition_key'] or '-'}  {r['run_id']}: {what}")
    else:
        lines.append(f"code, config, schema, libraries and models read: the same in all {plural(len(rows), 'run')}")
    failing = [r for r in rows if r["tests"]["failed"]]
    if failing:
        lines.append("declared tests that failed or warned:")
        for r in failing:
            for t in r["tests"]["failed"]:
                seen = "; ".join(str(x) for x in (t["observed"], t.get("statistic")) if x is not None)
                lines.append(f"  {r['partition_key'] or '-'}  {t['result']} {t['check']}: {short(seen, 64)} "
                             f"({t['threshold']})")
    return "\n".join(lines)


@guarded
def _diff(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.history import diff_runs

    d = diff_runs(lake_for(args), args.run_a, args.run_b)
    emit(args, d, _diff_text(d))
    return 0


def _side(head: dict[str, Any]) -> str:
    return (f"{head['run_id']}  {head['component']} {head['partition_key'] or ''}  {head['status']}  "
            f"started {fmt_time(head.get('started_at'))}")


def _test_side(t: dict[str, Any] | None) -> str:
    if t is None:
        return "not run"
    observed = short(t.get("observed"), 44)
    return f"{t['result']} ({observed})" if observed != "-" else t["result"]


def _statistic_change(check: str, a: str | None, b: str | None) -> str:
    """``fare_amount_range observed range: [5.03 .. 139.42] -> [493.0 .. 9848.0]``."""
    import re

    label = re.compile(r"^(observed [a-z ]+?) (\[.*\]|\S+)$")
    ma, mb = label.match(a or ""), label.match(b or "")
    if ma and mb and ma.group(1) == mb.group(1):
        return f"{check} {ma.group(1)}: {ma.group(2)} -> {mb.group(2)}"
    return f"{check}: {short(a, 50)} -> {short(b, 50)}"


def _diff_text(d: dict[str, Any]) -> str:
    lines = [f"a: {_side(d['a'])}", f"b: {_side(d['b'])}"]
    if d.get("warning"):
        lines.append(f"warning: {d['warning']}")
    same = [s for s in ("code", "config", "libraries") if not d[s]]
    schema = d["schema"]
    if not any(schema.values()):
        same.append("schema")
    if same:
        lines.append(f"same: {', '.join(same)}")
    for section in ("code", "config", "libraries"):
        if d[section]:
            lines.append(f"{section}:")
            lines += [f"  {k}: {short(v['a'], 50)} -> {short(v['b'], 50)}" for k, v in d[section].items()]
    if any(schema.values()):
        lines.append(f"schema: added {schema['added']}, removed {schema['removed']}, changed {list(schema['changed'])}")
    if d["inputs"]:
        lines.append("inputs:")
        lines += [f"  {k}: {v['a'] or '-'} -> {v['b'] or '-'}" for k, v in d["inputs"].items()]
    lines += _diff_data(d)
    lines += _diff_tests(d["tests"])
    if d["metrics"]:
        lines.append("metrics:")
        for k, v in d["metrics"].items():
            extra = f"  ({short(v['delta'])})" if v.get("delta") is not None else ""
            lines.append(f"  {k}: {short(v['a'])} -> {short(v['b'])}{extra}")
    return "\n".join(lines)


def _diff_data(d: dict[str, Any]) -> list[str]:
    """What each run wrote: the output, its rows, quarantined rows and the statistics its tests observed."""
    data = d["data"]
    rows = data["rows"]
    lines = ["data:"]
    change = ""
    if rows.get("delta") is not None:
        pct = f", {rows['change']:+.1%}" if rows.get("change") is not None else ""
        change = f"  ({rows['delta']:+d}{pct})"
    nothing = "nothing written"
    lines.append(f"  output: {d['output']['a'] or nothing} -> {d['output']['b'] or nothing}{change}")
    q = data.get("quarantined_rows")
    if q and (q["a"] or 0) != (q["b"] or 0):
        lines.append(f"  quarantined rows: {q['a'] or 0} -> {q['b'] or 0}")
    for name, obs in data["observed"].items():
        lines.append("  " + _statistic_change(name, obs["a"], obs["b"]))
    return lines


def _diff_tests(tests: list[dict[str, Any]]) -> list[str]:
    """The declared tests of both runs: changed outcomes marked ``*``, tests that passed in both counted."""
    if not tests:
        return ["declared tests: none recorded for either run"]
    changed = [t for t in tests if t["changed"]]
    lines = ["declared tests" + (f" ({plural(len(changed), 'outcome')} changed):" if changed else
                                 ": the same outcomes in both runs")]
    quiet = 0
    for t in tests:
        a, b = t["a"] or {}, t["b"] or {}
        if not t["changed"] and a.get("result") == "PASS" and b.get("result") == "PASS":
            quiet += 1
            continue
        mark = "*" if t["changed"] else " "
        lines.append(f" {mark}{t['check']}: {_test_side(t['a'])} -> {_test_side(t['b'])}")
    if quiet:
        lines.append(f"  ({plural(quiet, 'other test')} passed in both runs)")
    return lines


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="runs of one component over time, and where code/config changed")
    p.add_argument("component")
    add_span(p)
    p.add_argument("--status", choices=STATUSES)
    json_command(p, _history)

    p = sub.add_parser("diff", help="what differs between two runs: code, config, inputs, schema, tests, data")
    p.add_argument("run_a", type=run_id)
    p.add_argument("run_b", type=run_id)
    json_command(p, _diff)
