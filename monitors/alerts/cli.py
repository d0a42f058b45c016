"""``tracelake alerts``: list alerts with the state of their pages, acknowledge or resolve one,
resend undelivered pages now."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tracelake.lineage.cli_support import (
    CliError,
    add_json_flag,
    emit,
    fmt_time,
    format_table,
    lake_for,
    plural,
    record_id,
    text_arg,
)
from tracelake.monitors.alerts.manager import AlertManager, summarize

__all__ = ["register"]


def _lake(args: argparse.Namespace):
    return lake_for(args)


def _resend(args: argparse.Namespace) -> int:
    from tracelake.monitors.alerts.channels import AlertChannelsResource

    config = AlertChannelsResource().configure()
    for channel, reason in config.errors.items():
        print(f"warning: alert channel {channel} is misconfigured: {reason}", file=sys.stderr)
    manager = AlertManager(_lake(args), config.channels)
    try:
        report = manager.resend(args.alert_id, args.by)
    except KeyError as exc:
        raise CliError(str(exc).strip("'\"")) from None
    entries = {e.key: e for a in manager.alerts() for e in a.outbox
               if args.alert_id is None or a.alert_id == args.alert_id}
    rows = []
    for key in [*report.delivered, *report.failed, *report.deferred]:
        e = entries.get(key)
        rows.append({"delivery_id": key, "alert_id": e.alert_id if e else None, "event": e.event if e else None,
                     "channel": e.channel if e else None, "outcome": "delivered" if key in report.delivered
                     else "failed" if key in report.failed else "not tried",
                     "reason": report.failed.get(key) or report.deferred.get(key)})
    if report.busy:
        raise CliError("another process is delivering alerts right now; try again in a minute")
    scope = f"alert {args.alert_id}" if args.alert_id else "any alert"
    human = (format_table(rows, ["alert_id", "event", "channel", "outcome", "reason"], {"reason": 90})
             if rows else f"nothing to resend: every page of {scope} was delivered")
    emit(args, rows, human)
    return 0 if not report.failed and not report.deferred else 1


_CLOCKS = ("times: \"as of\" is the evaluation's as-of time (in the demo, the simulated day's clock), "
           "\"recorded\" the wall-clock time the event was written (audit.alerts.at); runs show wall-clock times")


def _recorded_at(manager: AlertManager) -> dict[str, Any]:
    """Per alert, when its newest lifecycle event was written (wall clock: ``audit.alerts.at``)."""
    events = manager.events()
    if events.empty:
        return {}
    life = events[events["alert_id"].notna() & events["event"].isin(["opened", "repeated", "acknowledged", "resolved"])]
    return dict(life.groupby("alert_id")["at"].max().items())


def _alerts(args: argparse.Namespace) -> int:
    action = getattr(args, "alerts_command", None) or "list"
    if action == "resend":
        return _resend(args)
    manager = AlertManager(_lake(args))
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
    recorded = _recorded_at(manager)
    rows = summarize(sorted(alerts, key=lambda a: str(a.last_seen), reverse=True))
    for r in rows:
        # Two clocks, said out loud: the evaluation's "as of" time and the wall-clock time it was written.
        r["last_seen_as_of"] = r["last_seen"]
        r["first_seen_as_of"] = r["first_seen"]
        r["recorded_at"] = recorded.get(r["alert_id"])
    human = ("\n".join(_describe(r) for r in rows) + f"\n({_CLOCKS})" if rows
             else "no alerts" if status == "all" else f"no {status} alerts")
    undelivered = [e for e in manager.pending_deliveries() if e.alert_id not in {r["alert_id"] for r in rows}]
    if undelivered:
        human += (f"\n{plural(len(undelivered), 'undelivered page')} of other alerts "
                  "(`tracelake alerts --status all`; `tracelake alerts resend` retries now)")
    emit(args, rows, human)
    return 0


def _describe(r: dict[str, Any]) -> str:
    """One alert in three short lines (fits 100 columns): what, when on both clocks, its pages."""
    head = (f"{r['alert_id']}  {r['status'].upper()}  {r['severity']}  {r['policy']} on {r['component']}  "
            f"({plural(int(r['occurrences'] or 0), 'occurrence')})")
    when = (f"    as of {fmt_time(r['first_seen'])} .. {fmt_time(r['last_seen'])}" if r["first_seen"] != r["last_seen"]
            else f"    as of {fmt_time(r['last_seen'])}")
    when += f"   recorded {fmt_time(r['recorded_at'])} (wall clock)"
    message = " ".join(str(r["message"] or "").split())
    lines = [head, when, f"    {message[:200]}"]
    if r.get("delivery") and r["delivery"] != "-":
        lines.append(f"    pages: {r['delivery']}")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    statuses = ["active", "open", "acknowledged", "resolved", "all"]
    p = sub.add_parser("alerts", help="alerts: list (default), ack ID, resolve ID, resend [ID]")
    p.add_argument("--status", choices=statuses, default="active")
    add_json_flag(p)
    p.set_defaults(func=_alerts)
    asub = p.add_subparsers(dest="alerts_command")
    q = asub.add_parser("list", help="list alerts and the state of their pages")
    # SUPPRESS: `alerts --status all list` keeps the value given before `list`.
    q.add_argument("--status", choices=statuses, default=argparse.SUPPRESS)
    add_json_flag(q)
    q.set_defaults(func=_alerts)
    for name, help_text in (("ack", "acknowledge an open alert"), ("resolve", "resolve an alert by hand")):
        q = asub.add_parser(name, help=help_text)
        q.add_argument("alert_id", type=record_id("an alert id", "tracelake alerts --status all"))
        q.add_argument("--by", type=text_arg("--by"), help="who (default: your user name)")
        if name == "resolve":
            q.add_argument("--reason")
        add_json_flag(q)
        q.set_defaults(func=_alerts)
    q = asub.add_parser("resend", help="retry now every undelivered page (of one alert), with the channels "
                                        "configured in this environment; never re-sends a delivered page")
    q.add_argument("alert_id", nargs="?", type=record_id("an alert id", "tracelake alerts --status all"))
    q.add_argument("--by", type=text_arg("--by"), help="who (default: your user name)")
    add_json_flag(q)
    q.set_defaults(func=_alerts)
