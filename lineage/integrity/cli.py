"""``tracelake`` integrity subcommands: ``audit status|flush|verify|reconcile|compact``, ``vacuum``,
``retention verify`` - the commands that keep the record whole and prove it is."""

from __future__ import annotations

import argparse

from tracelake.lineage.cli_support import (
    CliError,
    add_json_flag,
    emit,
    float_in,
    format_table,
    lake_for,
    plural,
    table_name,
    text_arg,
)

__all__ = ["register"]


def _lake(args: argparse.Namespace):
    return lake_for(args)


def _audit_status(args: argparse.Namespace) -> int:
    from deltalake import DeltaTable

    lake = _lake(args)
    tables = []
    for name in lake.store.tables():
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
    emit(args, written, "flushed: " + (", ".join(f"{k} {plural(v, 'record')}" for k, v in written.items())
                                       or "nothing pending"))
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from tracelake.lineage.integrity.verify import verify_lakehouse

    report = verify_lakehouse(_lake(args))
    payload = {"ok": report.ok, "records": report.checked_records, "runs": report.checked_runs,
               "tables": report.tables, "problems": report.problems}
    human = (f"{'OK' if report.ok else 'PROBLEMS'}: {plural(report.checked_records, 'audit record')} in "
             f"{plural(len(report.tables), 'chained table')} "
             f"({', '.join(f'{t} {n}' for t, n in report.tables.items())}), "
             f"{plural(report.checked_runs, 'succeeded run')} checked against their tables")
    if report.external_runs:
        human += (f", {plural(report.external_runs, 'external run')} (received over OpenLineage) "
                  "checked against theirs")
        payload["external_runs"], payload["notes"] = report.external_runs, report.notes
    human += "".join(f"\n  note: {n}" for n in report.notes)
    if report.problems:
        human += "\n" + "\n".join(f"  - {p}" for p in report.problems)
    emit(args, payload, human)
    return 0 if report.ok else 1


def _dagster_runs():
    """The Dagster instance of $DAGSTER_HOME, when there is one, so dead runs are failed there too."""
    import os

    if not os.environ.get("DAGSTER_HOME"):
        return None
    import dagster as dg

    from tracelake.lineage.record.dagster_runs import DagsterRuns

    return DagsterRuns(dg.DagsterInstance.get())


def _audit_reconcile(args: argparse.Namespace) -> int:
    from tracelake.lineage.record.reconcile import reconcile_dagster, reconcile_mlflow, reconcile_open_runs

    lake = _lake(args)
    dagster_runs = _dagster_runs()
    results = reconcile_open_runs(lake, min_age_s=args.min_age,
                                  dagster_run_in_progress=dagster_runs.in_progress if dagster_runs else None,
                                  on_abandoned=dagster_runs.mark_failed if dagster_runs else None)
    if dagster_runs:
        results += reconcile_dagster(lake, dagster_runs)
    if not args.skip_mlflow:
        results += reconcile_mlflow(lake)
    rows = [r.__dict__ for r in results]
    emit(args, rows, format_table(rows, ["run_id", "component", "action", "detail"], {"detail": 80}) if rows
         else "nothing to reconcile")
    return 0


def _audit_anchor(args: argparse.Namespace) -> int:
    from tracelake.lineage.integrity.anchoring import anchor_current_heads
    from tracelake.lineage.query.admin import admin_action

    lake = _lake(args)
    # Anchoring decides what later verification measures against: an administrative action.
    with admin_action(lake, "audit anchor", "anchor the current chain heads", reason=args.reason):
        done = anchor_current_heads(lake)
    emit(args, done, "anchored the current heads: " + (", ".join(f"{t} ({n})" for t, n in done.items()) or "none"))
    return 0


def _audit_compact(args: argparse.Namespace) -> int:
    from tracelake.lineage.query.admin import admin_action

    lake = _lake(args)
    # Compaction rewrites the audit tables' files: an administrative action, recorded as such.
    with admin_action(lake, "audit compact", "compact and checkpoint the audit tables", reason=args.reason):
        lake.flush()
        rows = [lake.store.compact(t) for t in lake.store.tables()]
    emit(args, rows, format_table(rows, ["table", "version", "numFilesAdded", "numFilesRemoved", "skipped"]))
    return 0


def _vacuum(args: argparse.Namespace) -> int:
    from tracelake.lineage.integrity.retention import RetentionError, vacuum

    try:
        rows = vacuum(_lake(args), table=args.table, retain_days=args.retain_days, dry_run=not args.run,
                      reason=args.reason)
    except RetentionError as exc:
        raise CliError(str(exc)) from None
    emit(args, rows, format_table(rows, ["table", "retain_days", "dry_run", "files"]) +
         ("" if args.run else "\n(dry run: pass --run to delete those files)"))
    return 0


def _retention_verify(args: argparse.Namespace) -> int:
    from tracelake.lineage.integrity.retention import verify_retention

    results = verify_retention(_lake(args))
    rows = [{"table": r.table, "oldest": r.oldest_version, "latest": r.latest_version, "ok": r.ok,
             "problems": "; ".join(r.problems)} for r in results]
    emit(args, rows, format_table(rows, ["table", "oldest", "latest", "ok", "problems"], {"problems": 100}))
    return 0 if all(r.ok for r in results) else 1


def register(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="the audit store: status, flush, verify, reconcile, compact")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    for name, func, help_text in [
        ("status", _audit_status, "journal and audit tables"),
        ("flush", _audit_flush, "write journaled records to the Delta audit tables now"),
        ("verify", _audit_verify, "check the hash chain and every recorded output version"),
        ("compact", _audit_compact, "compact and checkpoint the audit tables"),
        ("anchor", _audit_anchor, "anchor the current chain heads (after restoring or moving a lakehouse)"),
    ]:
        q = audit_sub.add_parser(name, help=help_text)
        if name in ("compact", "anchor"):
            q.add_argument("--reason", type=text_arg("--reason"),
                           help="why: recorded with the action in audit.admin_actions")
        add_json_flag(q)
        q.set_defaults(func=func)
    rec = audit_sub.add_parser("reconcile", help="record dead runs as abandoned; finish orphaned MLflow runs")
    rec.add_argument("--min-age", type=float_in(0, 10 * 365 * 86400, "seconds"), default=0.0,
                     help="only runs open at least this many seconds")
    rec.add_argument("--skip-mlflow", action="store_true", help="do not touch MLflow")
    add_json_flag(rec)
    rec.set_defaults(func=_audit_reconcile)

    p = sub.add_parser("vacuum", help="VACUUM through the retention guard (dry run unless --run)")
    p.add_argument("--table", type=table_name, help="one table (a data table, or an audit table by its name)")
    p.add_argument("--retain-days", type=float_in(0, 36500, "days"),
                   help="default: the retention setting; shorter is refused")
    p.add_argument("--run", action="store_true", help="really delete the files (recorded in audit.admin_actions)")
    p.add_argument("--reason", type=text_arg("--reason"), help="why: recorded with a --run in audit.admin_actions")
    add_json_flag(p)
    p.set_defaults(func=_vacuum)

    p = sub.add_parser("retention", help="history kept for years")
    rsub = p.add_subparsers(dest="retention_command", required=True)
    q = rsub.add_parser("verify", help="read the oldest version of every table and check it against the audit")
    add_json_flag(q)
    q.set_defaults(func=_retention_verify)
