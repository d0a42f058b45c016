"""``tracelake runs`` and ``tracelake run show``: the run records, as a list and one by one."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tracelake.lineage.cli_support import (
    CliError,
    count_or_all,
    emit,
    fmt_time,
    format_table,
    lake_for,
    plural,
    run_or_uuid,
    short,
)
from tracelake.lineage.query.cli_common import STATUSES, add_span, guarded, json_command, span_and_lake
from tracelake.lineage.query.runs import RunNotFound, get_run, list_runs

__all__ = ["RUN_HEADERS", "register"]


RUN_COLUMNS = ["run_id", "component", "partition_key", "status", "started_at", "seconds", "output_version",
               "output_rows"]
RUN_HEADERS = {"partition_key": "partition", "started_at": "started", "seconds": "secs", "output_version": "version",
               "output_rows": "rows"}


@guarded
def _runs(args: argparse.Namespace) -> int:
    since, until, lake = span_and_lake(args)
    if args.partition is not None:
        known = set(lake.store.component_runs(include_open=True).get("partition_key", []))
        if args.partition not in known:
            parts = sorted(str(p) for p in known if p is not None)
            hint = f"partitions with runs: {parts[0]} .. {parts[-1]} ({len(parts)})" if parts else "no partitioned runs"
            raise CliError(f"no runs of partition {args.partition!r}; {hint}")
    frame = list_runs(lake, component=args.component, status=args.status, partition=args.partition,
                      since=since, until=until, limit=args.limit)
    rows = []
    for rec in frame.to_dict("records") if not frame.empty else []:
        ms = rec.get("duration_ms")
        rec["seconds"] = None if ms is None or ms != ms else round(ms / 1000, 1)
        rows.append({k: rec.get(k) for k in [*RUN_COLUMNS, "error_message"]})
    cols = [*RUN_COLUMNS, *(["error_message"] if any(r.get("error_message") for r in rows) else [])]
    human = format_table(rows, cols, {"error_message": 50}, {**RUN_HEADERS, "error_message": "error"}) \
        if rows else "no runs match" if (args.status or since or until) else "no runs recorded yet"
    emit(args, rows, human)
    return 0


def _describe_run(rec: dict[str, Any]) -> str:
    lines = [f"run {rec['run_id']}  {rec['component']}  partition={rec.get('partition_key') or '-'}  "
             f"status={rec['status'].upper()}"]
    lines.append(f"  started {fmt_time(rec.get('started_at'))}  ended {fmt_time(rec.get('ended_at'))}  "
                 f"({(rec.get('duration_ms') or 0) / 1000:.1f} s)")
    lines.append(f"  dagster run {rec.get('dagster_run_id') or '-'}")
    if rec.get("error_message"):
        lines.append(f"  error   {rec.get('error_type')}: {rec['error_message']}")
    lines.append(f"  code    version {rec.get('code_version')}  source sha256 {short(rec.get('source_hash'), 16)}  "
                 f"git {short(rec.get('git_commit'), 12)}{' (dirty)' if rec.get('git_dirty') else ''}")
    lines.append(f"  openlineage run {_openlineage_id(rec)}")
    tags = rec.get("tags") or {}
    if tags.get("tracelake.external") == "true":   # received over OpenLineage: what was established, how
        lines.append(f"  external {tags.get('openlineage.job')}  verified={tags.get('tracelake.external.verified')}")
        lines += [f"    {k.rsplit('.', 1)[-1]}: {v}" for k, v in sorted(tags.items()) if k.startswith("tracelake.external.")
                  and k not in ("tracelake.external.verified",)]
    lines.append("  inputs")
    for inp in rec.get("inputs") or []:
        if inp.get("kind") == "model":
            lines.append(f"    model {inp['name']} v{inp.get('model_version')}  (MLflow run {inp.get('mlflow_run_id')})")
        else:
            parts = inp.get("partitions") or []
            span = f" partitions {parts[0]}..{parts[-1]} ({plural(len(parts), 'partition')})" if parts else ""
            missing = inp.get("missing_partitions") or []
            lines.append(f"    {inp['name']}@v{inp.get('version')}{span}"
                         + (f"  MISSING {len(missing)}: {', '.join(missing[:4])}" if missing else ""))
    if rec.get("output_version") is not None:
        lines.append(f"  output  {rec.get('output_table')}@v{rec['output_version']}  rows={rec.get('output_rows')}  "
                     f"files={rec.get('output_files')}  schema {short(rec.get('output_schema_hash'), 16)}")
    for model in rec.get("models") or []:
        lines.append(f"  model   {model['role']} {model['name']} v{model['version']}")
    metrics = rec.get("metrics") or {}
    if metrics:
        lines.append("  metrics " + ", ".join(f"{k}={short(v)}" for k, v in sorted(metrics.items())))
    from tracelake.lineage.query.history import split_observed

    for check in rec.get("checks") or []:
        outcome, statistic = split_observed(check.get("observed_text"))
        seen = "; ".join(x for x in (outcome or short(check.get("observed_value")), statistic) if x)
        lines.append(f"  check   {_outcome(check)} {check['check_name']}: {short(seen, 64)}  "
                     f"({check.get('threshold_text')})")
    if rec.get("config"):
        text = json.dumps(rec["config"], sort_keys=True)
        lines.append(f"  config  {short(text, 80)}" + ("  (all of it: --json)" if len(text) > 80 else ""))
    if rec.get("mlflow_run_url"):
        lines.append(f"  mlflow  {rec['mlflow_run_url']}")
    return "\n".join(lines)


def _outcome(check: dict[str, Any]) -> str:
    return "PASS" if check.get("passed") else ("FAIL" if check.get("severity") == "error" else "WARN")


def _openlineage_id(rec: dict[str, Any]) -> str:
    from tracelake.lineage.openlineage.ids import openlineage_run_id

    return rec.get("openlineage_run_id") or openlineage_run_id(rec["run_id"])


def _run_show(args: argparse.Namespace) -> int:
    try:
        rec = get_run(lake_for(args), args.run_id)
    except RunNotFound as exc:
        raise CliError(str(exc)) from None
    emit(args, rec, _describe_run(rec))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list component runs, newest first")
    p.add_argument("--component", help="only this component")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--partition", help="only this partition key")
    add_span(p, "started at or after (ISO date/time, UTC)", "started before (ISO date/time, UTC)")
    p.add_argument("--limit", type=count_or_all, default=50, help="at most this many (default 50; 0 = all)")
    json_command(p, _runs)

    run = sub.add_parser("run", help="one component run")
    run_sub = run.add_subparsers(dest="run_command", required=True)
    show = run_sub.add_parser("show", help="everything recorded about a run")
    show.add_argument("run_id", type=run_or_uuid, help="a Tracelake run id, or its OpenLineage run id (UUID)")
    json_command(show, _run_show)
