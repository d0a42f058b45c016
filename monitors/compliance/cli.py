"""``tracelake report model|period|decision|verify|list`` - compliance reports from the records.

Arguments are checked before anything expensive starts (unknown model or version, an empty or
reversed window, a window before any data, a table or predicate that does not exist) and a bad
one costs one line and exit code 2. ``verify`` exits 1 when a file was altered.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from tracelake.lineage.cli_support import (
    CliError,
    add_json_flag,
    as_of,
    emit,
    format_table,
    int_in,
    lake_for,
    output_dir,
    table_name,
    text_arg,
)

__all__ = ["issue_decision", "issue_model", "issue_period", "register"]


def _lake(args: argparse.Namespace):
    return lake_for(args)       # one clear line when --home holds no lakehouse (nothing is created)


def _out(args: argparse.Namespace) -> str | None:
    """--out: a new or empty folder (or --force), never a file or a system folder - checked before
    any work, so a report is never half-written over another one's files."""
    if not getattr(args, "out", None):
        return None
    return str(output_dir(args.out, force=args.force))


def _issued_text(issued: Any, seconds: float) -> str:
    lines = [f"issued {issued.kind} report {issued.report_id}: {issued.title} ({seconds:.1f} s)"]
    for fmt, f in issued.files.items():
        lines.append(f"  {fmt:4s} {f['path']}\n       sha256 {f['sha256']}  ({f['bytes']} bytes)")
    r = issued.record
    lines.append(f"  recorded in audit.reports at position {r['chain_seq']} (record hash {r['record_hash'][:16]}…); "
                 f"check a file later with `tracelake report verify FILE`")
    return "\n".join(lines)


def issue_model(lake: Any, name: str, version: str | None = None, *, out_dir: str | None = None,
                trigger: str = "api", dagster_run_id: str | None = None, pdf: bool = True):
    """Build and issue the model report (Python entry point; raises ReportInputError on bad input)."""
    from tracelake.monitors.compliance.issue import issue_report
    from tracelake.monitors.compliance.model_report import build_model_report, resolve_model_version
    from tracelake.monitors.compliance.records import Records

    records = Records(lake)
    model = resolve_model_version(records, name, version)   # validated before anything expensive
    doc = build_model_report(records, model["name"], model["version"])
    return issue_report(lake, doc, subject=f"{model['name']} v{model['version']}", cited=records.cited_records(),
                        params={"model": model["name"], "version": model["version"]}, out_dir=out_dir,
                        trigger=trigger, dagster_run_id=dagster_run_id, pdf=pdf)


def issue_period(lake: Any, start: str, end: str, *, out_dir: str | None = None, trigger: str = "api",
                 dagster_run_id: str | None = None, allow_empty: bool = False, pdf: bool = True):
    from tracelake.monitors.compliance.issue import issue_report
    from tracelake.monitors.compliance.period_report import build_period_report, parse_period
    from tracelake.monitors.compliance.records import Records

    first, last = parse_period(start, end)
    records = Records(lake)
    doc = build_period_report(records, first, last, allow_empty=allow_empty)
    return issue_report(lake, doc, subject=f"{first}..{last}", cited=records.cited_records(),
                        params={"from": first.isoformat(), "to": last.isoformat()}, out_dir=out_dir,
                        trigger=trigger, dagster_run_id=dagster_run_id, pdf=pdf)


def issue_decision(lake: Any, table: str, where: str, as_of: str | None = None, *, out_dir: str | None = None,
                   max_rows: int = 50, trigger: str = "api", pdf: bool = True):
    from tracelake.monitors.compliance.decision import build_decision_report
    from tracelake.monitors.compliance.issue import issue_report
    from tracelake.monitors.compliance.records import Records

    records = Records(lake)
    doc = build_decision_report(records, table, where, as_of=as_of, max_rows=max_rows)
    return issue_report(lake, doc, subject=f"{table}@v{doc['subject']['version']}", cited=records.cited_records(),
                        params={"table": table, "where": where, "as_of": as_of}, out_dir=out_dir, trigger=trigger,
                        pdf=pdf)


def _guard(fn):
    def wrapper(args: argparse.Namespace) -> int:
        from tracelake.monitors.compliance.graph_svg import ReportToolMissing
        from tracelake.monitors.compliance.records import ReportInputError

        if getattr(args, "out", None):   # a file, a system folder, a Delta log: refused before any work
            output_dir(args.out, force=True)
        try:
            return fn(args)
        except (ReportInputError, ReportToolMissing) as exc:
            raise CliError(str(exc)) from None
    return wrapper


@_guard
def _model(args: argparse.Namespace) -> int:
    out = _out(args)
    t = time.perf_counter()
    issued = issue_model(_lake(args), args.name, args.version, out_dir=out, trigger="cli", pdf=not args.no_pdf)
    emit(args, issued.summary(), _issued_text(issued, time.perf_counter() - t))
    return 0


@_guard
def _period(args: argparse.Namespace) -> int:
    from tracelake.monitors.compliance.period_report import parse_period

    parse_period(args.start, args.end)      # a bad window costs nothing: no lakehouse is opened
    out = _out(args)
    t = time.perf_counter()
    issued = issue_period(_lake(args), args.start, args.end, out_dir=out, trigger="cli", pdf=not args.no_pdf)
    emit(args, {**issued.summary(), "counts": issued.document.get("counts")},
         _issued_text(issued, time.perf_counter() - t))
    return 0


def _decision_text(doc: dict[str, Any]) -> str:
    lines = [doc["title"]]
    for key, value in doc["summary"]:
        lines.append(f"  {key:26s} {value}")
    for s in doc["sections"]:
        if s["id"] == "lineage":
            rows = s["tables"][0]["rows"]
            lines.append("upstream runs and their exact inputs:")
            lines.append(format_table(rows, ["depth", "component", "partition_key", "status", "output",
                                             "exact_inputs", "failed_checks", "run_id"], {"exact_inputs": 70}))
        if s["id"] == "features":
            for t in s["tables"]:
                if t["rows"]:
                    lines.append(f"what the model saw - {t['title']}; first 10 rows and 12 columns shown, all in "
                                 "--json and the report:")
                    cols = t["columns"][:12]
                    lines.append(format_table(t["rows"][:10], cols, dict.fromkeys(cols, 20)))
    return "\n".join(lines)


@_guard
def _decision(args: argparse.Namespace) -> int:
    from tracelake.monitors.compliance.decision import build_decision_report
    from tracelake.monitors.compliance.records import Records

    out = _out(args)
    t = time.perf_counter()
    lake = _lake(args)
    if out:
        issued = issue_decision(lake, args.table, args.where, args.as_of, out_dir=out, max_rows=args.max_rows,
                                trigger="cli", pdf=not args.no_pdf)
        emit(args, {**issued.summary(), "answer": issued.document["answer"]},
             _decision_text(issued.document) + "\n" + _issued_text(issued, time.perf_counter() - t))
        return 0
    doc = build_decision_report(Records(lake), args.table, args.where, as_of=args.as_of, max_rows=args.max_rows)
    emit(args, doc, _decision_text(doc) + f"\n({time.perf_counter() - t:.1f} s; add --out DIR to issue it as a "
                                          "report: HTML, PDF and JSON, recorded)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tracelake.monitors.compliance.issue import verify_file

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"no file {args.file}")
    verdict = verify_file(_lake(args), path)
    emit(args, verdict.to_dict(), ("OK: " if verdict.ok else "FAILED: ") + verdict.message)
    return 0 if verdict.ok else 1


def _list(args: argparse.Namespace) -> int:
    from tracelake.monitors.compliance.issue import issued_reports

    rows = []
    for r in issued_reports(_lake(args)):
        html = next((f["path"] for f in r["files"] if f["format"] == "html"), None)
        rows.append({"report_id": r["report_id"], "kind": r["kind"], "subject": r["subject"],
                     "issued_at": r["issued_at"], "trigger": r["trigger"], "html": html,
                     "supersedes": r.get("supersedes")})
    if args.kind:
        rows = [r for r in rows if r["kind"] == args.kind]
    emit(args, rows, format_table(rows, ["report_id", "kind", "subject", "issued_at", "trigger", "html"],
                                  {"html": 90}) if rows else "no compliance reports issued yet")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="compliance reports: per model version, per period, per decision; verify")
    rsub = report.add_subparsers(dest="report_command", required=True)

    p = rsub.add_parser("model", help="the dossier of a registered model version (HTML, PDF, JSON), recorded")
    p.add_argument("name", help="registered model name, e.g. tip_model")
    p.add_argument("--version", help="registry version (default: the newest registered by a recorded run)")
    p.add_argument("--out", help="a new or empty folder for the files (default: <home>/reports/compliance/models/...)")
    p.add_argument("--force", action="store_true", help="write into --out even if it holds files")
    p.add_argument("--no-pdf", action="store_true", help="HTML and JSON only")
    add_json_flag(p)
    p.set_defaults(func=_model)

    p = rsub.add_parser("period", help="everything in service between two days (HTML, PDF, JSON), recorded")
    p.add_argument("--from", dest="start", required=True, help="first day, ISO (e.g. 2026-01-01)")
    p.add_argument("--to", dest="end", required=True, help="last day, inclusive")
    p.add_argument("--out", help="a new or empty folder for the files (default: <home>/reports/compliance/periods/...)")
    p.add_argument("--force", action="store_true", help="write into --out even if it holds files")
    p.add_argument("--no-pdf", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=_period)

    p = rsub.add_parser("decision", help="which data and which model produced these rows, and what failed upstream")
    p.add_argument("table", type=table_name)
    p.add_argument("--where", required=True, type=text_arg("--where"), help="SQL predicate selecting the decisions")
    p.add_argument("--as-of", type=as_of, help="table version number or ISO time (default: newest)")
    p.add_argument("--out", help="also issue it as a report (HTML, PDF, JSON) in this new or empty folder, recorded")
    p.add_argument("--force", action="store_true", help="write into --out even if it holds files")
    p.add_argument("--max-rows", type=int_in(1, 100_000, "rows"), default=50,
                   help="decision and feature rows shown (default 50)")
    p.add_argument("--no-pdf", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=_decision)

    p = rsub.add_parser("verify", help="was this report file altered after it was issued? which record issued it?")
    p.add_argument("file")
    add_json_flag(p)
    p.set_defaults(func=_verify)

    p = rsub.add_parser("list", help="issued compliance reports, oldest first")
    p.add_argument("--kind", choices=["model", "period", "decision"])
    add_json_flag(p)
    p.set_defaults(func=_list)
