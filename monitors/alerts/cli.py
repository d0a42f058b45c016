"""``tracelake alerts``: list open alerts, acknowledge or resolve one."""

from __future__ import annotations

import argparse

from tracelake.lineage import open_lakehouse
from tracelake.lineage.cli_support import CliError, add_json_flag, emit, format_table

from tracelake.monitors.alerts.manager import AlertManager, summarize

__all__ = ["register"]


def _lake(args: argparse.Namespace):
    return open_lakehouse(getattr(args, "home", None))


def _alerts(args: argparse.Namespace) -> int:
    manager = AlertManager(_lake(args))
    action = getattr(args, "alerts_command", None) or "list"
    try:
        if action == "ack":
            state = manager.acknowledge(args.alert_id, args.by)
            emit(args, summarize([state])[0], f"acknowledged {state.alert_id} ({state.policy} on {state.component})")
            return 0
        if action == "resolve":
            state = manager.resolve(args.alert_id, args.by, args.reason or "")
            emit(args, summarize([state])[0], f"resolved {state.alert_id} ({state.policy} on {state.component})")
            return 0
    except (KeyError, ValueError) as exc:
        raise CliError(str(exc).strip("'\"")) from None
    status = getattr(args, "status", "active")
    alerts = manager.alerts()
    if status == "active":
        alerts = [a for a in alerts if a.status in ("open", "acknowledged")]
    elif status != "all":
        alerts = [a for a in alerts if a.status == status]
    rows = summarize(sorted(alerts, key=lambda a: str(a.last_seen), reverse=True))
    emit(args, rows, format_table(rows, ["alert_id", "status", "severity", "policy", "component", "occurrences",
                                         "last_seen", "message"], {"message": 90}) if rows else f"no {status} alerts")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts", help="alerts: list (default), ack ID, resolve ID")
    p.add_argument("--status", choices=["active", "open", "acknowledged", "resolved", "all"], default="active")
    add_json_flag(p)
    p.set_defaults(func=_alerts)
    asub = p.add_subparsers(dest="alerts_command")
    q = asub.add_parser("list", help="list alerts")
    q.add_argument("--status", choices=["active", "open", "acknowledged", "resolved", "all"], default="active")
    add_json_flag(q)
    q.set_defaults(func=_alerts)
    for name, help_text in (("ack", "acknowledge an open alert"), ("resolve", "resolve an alert by hand")):
        q = asub.add_parser(name, help=help_text)
        q.add_argument("alert_id")
        q.add_argument("--by", help="who (default: your user name)")
        if name == "resolve":
            q.add_argument("--reason")
        add_json_flag(q)
        q.set_defaults(func=_alerts)
