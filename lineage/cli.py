"""The core's ``tracelake`` subcommands: ``runs``, ``run show``, ``audit ...``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .cli_support import CliError, add_json_flag, emit, format_table, short
from .lakehouse import open_lakehouse
from .runs import RunNotFound, get_run, list_runs, parse_when

__all__ = ["register"]

RUN_COLUMNS = ["run_id", "component", "partition_key", "status", "started_at", "seconds", "output_version",
               "output_rows"]


def _lake(args: argparse.Namespace):
    return open_lakehouse(getattr(args, "home", None))


def _runs(args: argparse.Namespace) -> int:
    try:
        frame = list_runs(_lake(args), component=args.component, status=args.status, partition=args.partition,
                          since=parse_when(args.since), until=parse_when(args.until), limit=args.limit)
    except (RunNotFound, ValueError) as exc:
        raise CliError(str(exc)) from None
    rows = []
    for rec in frame.to_dict("records") if not frame.empty else []:
        ms = rec.get("duration_ms")
        rec["seconds"] = None if ms is None or ms != ms else round(ms / 1000, 1)
        rows.append({k: rec.get(k) for k in RUN_COLUMNS + ["error_message"]})
    human = format_table(rows, RUN_COLUMNS + ["error_message"], {"error_message": 60}) if rows else "no runs recorded yet"
    emit(args, rows, human)
    return 0


def _describe_run(rec: dict[str, Any]) -> str:
    lines = [f"run {rec['run_id']}  {rec['component']}  partition={rec.get('partition_key') or '-'}  "
             f"status={rec['status'].upper()}"]
    lines.append(f"  started {rec.get('started_at')}  ended {rec.get('ended_at') or '-'}  "
                 f"({(rec.get('duration_ms') or 0) / 1000:.1f} s)  dagster run {rec.get('dagster_run_id') or '-'}")
    if rec.get("error_message"):
        lines.append(f"  error   {rec.get('error_type')}: {rec['error_message']}")
    lines.append(f"  code    version {rec.get('code_version')}  source sha256 {short(rec.get('source_hash'), 16)}  "
                 f"git {short(rec.get('git_commit'), 12)}{' (dirty)' if rec.get('git_dirty') else ''}")
    lines.append("  inputs")
    for inp in rec.get("inputs") or []:
        if inp.get("kind") == "model":
            lines.append(f"    model {inp['name']} v{inp.get('model_version')}  (MLflow run {inp.get('mlflow_run_id')})")
        else:
            parts = inp.get("partitions") or []
            span = f" partitions {parts[0]}..{parts[-1]} ({len(parts)})" if parts else ""
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
    for check in rec.get("checks") or []:
        lines.append(f"  check   {'PASS' if check['passed'] else 'FAIL'} {check['check_name']} "
                     f"observed={short(check.get('observed_value'))} threshold={check.get('threshold_text')}")
    if rec.get("config"):
        lines.append(f"  config  {json.dumps(rec['config'], sort_keys=True)[:300]}")
    if rec.get("mlflow_run_url"):
        lines.append(f"  mlflow  {rec['mlflow_run_url']}")
    return "\n".join(lines)


def _run_show(args: argparse.Namespace) -> int:
    try:
        rec = get_run(_lake(args), args.run_id)
    except RunNotFound as exc:
        raise CliError(str(exc)) from None
    emit(args, rec, _describe_run(rec))
    return 0


def _audit_status(args: argparse.Namespace) -> int:
    from deltalake import DeltaTable

    from .audit_schema import AUDIT_TABLES

    lake = _lake(args)
    tables = []
    for name in sorted(AUDIT_TABLES):
        path = lake.store.path(name)
        if DeltaTable.is_deltatable(path):
            dt = DeltaTable(path)
            tables.append({"table": name, "version": dt.version(), "files": len(dt.file_uris()),
                           "retention": dt.metadata().configuration.get("delta.logRetentionDuration")})
        else:
            tables.append({"table": name, "version": None, "files": 0, "retention": None})
    payload = {"home": lake.settings.home, "journal": lake.journal.describe(), "tables": tables}
    human = (f"lakehouse {lake.settings.home}\njournal   {payload['journal']}\n\n"
             + format_table(tables, ["table", "version", "files", "retention"]))
    emit(args, payload, human)
    return 0


def _audit_flush(args: argparse.Namespace) -> int:
    written = _lake(args).flush()
    emit(args, written, "flushed: " + (", ".join(f"{k}={v}" for k, v in written.items()) or "nothing pending"))
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from .verify import verify_lakehouse

    report = verify_lakehouse(_lake(args))
    payload = {"ok": report.ok, "records": report.checked_records, "runs": report.checked_runs,
               "problems": report.problems}
    human = (f"{'OK' if report.ok else 'PROBLEMS'}: {report.checked_records} audit records, "
             f"{report.checked_runs} succeeded runs checked against their tables")
    if report.problems:
        human += "\n" + "\n".join(f"  - {p}" for p in report.problems)
    emit(args, payload, human)
    return 0 if report.ok else 1


def _audit_reconcile(args: argparse.Namespace) -> int:
    from .reconcile import reconcile_mlflow, reconcile_open_runs

    lake = _lake(args)
    results = reconcile_open_runs(lake, min_age_s=args.min_age)
    if not args.skip_mlflow:
        results += reconcile_mlflow(lake)
    rows = [r.__dict__ for r in results]
    emit(args, rows, format_table(rows, ["run_id", "component", "action", "detail"], {"detail": 80}) if rows
         else "nothing to reconcile")
    return 0


def _audit_compact(args: argparse.Namespace) -> int:
    from .audit_schema import AUDIT_TABLES

    lake = _lake(args)
    lake.flush()
    rows = [lake.store.compact(t) for t in sorted(AUDIT_TABLES)]
    emit(args, rows, format_table(rows, ["table", "version", "numFilesAdded", "numFilesRemoved", "skipped"]))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list component runs, newest first")
    p.add_argument("--component", help="only this component")
    p.add_argument("--status", choices=["started", "succeeded", "failed", "skipped", "abandoned"])
    p.add_argument("--partition", help="only this partition key")
    p.add_argument("--since", help="started at or after (ISO date/time, UTC)")
    p.add_argument("--until", help="started before (ISO date/time, UTC)")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0 = all)")
    add_json_flag(p)
    p.set_defaults(func=_runs)

    run = sub.add_parser("run", help="one component run")
    run_sub = run.add_subparsers(dest="run_command", required=True)
    show = run_sub.add_parser("show", help="everything recorded about a run")
    show.add_argument("run_id")
    add_json_flag(show)
    show.set_defaults(func=_run_show)

    audit = sub.add_parser("audit", help="the audit store: status, flush, verify, reconcile, compact")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    for name, func, help_text in [
        ("status", _audit_status, "journal and audit tables"),
        ("flush", _audit_flush, "write journaled records to the Delta audit tables now"),
        ("verify", _audit_verify, "check the hash chain and every recorded output version"),
        ("compact", _audit_compact, "compact and checkpoint the audit tables"),
    ]:
        q = audit_sub.add_parser(name, help=help_text)
        add_json_flag(q)
        q.set_defaults(func=func)
    rec = audit_sub.add_parser("reconcile", help="record dead runs as abandoned; finish orphaned MLflow runs")
    rec.add_argument("--min-age", type=float, default=0.0, help="only runs open at least this many seconds")
    rec.add_argument("--skip-mlflow", action="store_true", help="do not touch MLflow")
    add_json_flag(rec)
    rec.set_defaults(func=_audit_reconcile)
