"""``tracelake`` monitoring subcommands: alerts, metrics (with anomalies), checks."""

from __future__ import annotations

import argparse

from tracelake.lineage import CHECK_RESULTS, open_lakehouse
from tracelake.lineage.cli_support import CliError, add_json_flag, emit, format_table, short

from .alerts import AlertManager, summarize
from .anomaly import RollingBand, SeasonalBand, detect
from .metric_history import metric_names, run_metric, window_metric

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


def _parse_slice(text: str | None) -> tuple[str, str]:
    if not text:
        return "all", "all"
    if "=" not in text:
        raise CliError(f"--slice {text!r}: write it as key=value, e.g. pickup_zone=Airport")
    key, _, value = text.partition("=")
    return key.strip(), value.strip()


def _metrics(args: argparse.Namespace) -> int:
    lake = _lake(args)
    names = metric_names(lake, args.component)
    if not args.metric:
        payload = {"component": args.component, **names}
        emit(args, payload, f"{args.component}: window metrics {names['window'] or '-'}; per-run metrics {names['run']}")
        return 0
    key, value = _parse_slice(args.slice)
    if args.metric in names["window"]:
        frame = window_metric(lake, args.component, args.metric, slice_key=key, slice_value=value)
        series = frame.groupby("time")["value"].mean()
    elif args.metric in names["run"]:
        frame = run_metric(lake, args.component, args.metric)
        series = frame.set_index("time")["value"]
    else:
        raise CliError(f"{args.component} has no metric {args.metric!r}; it has {names['window'] + names['run']}")
    anomalies = {a.time: a for a in detect(series, [SeasonalBand(), RollingBand()])} if args.anomalies else {}
    rows = [{"time": t, "value": v, "anomaly": anomalies[t].describe() if t in anomalies else ""}
            for t, v in series.items()]
    emit(args, rows, format_table(rows, ["time", "value", "anomaly"], {"anomaly": 90}) if rows else "no values")
    return 0


def _checks(args: argparse.Namespace) -> int:
    frame = _lake(args).store.read(CHECK_RESULTS)
    if not frame.empty:
        if args.component:
            frame = frame[frame["component"] == args.component]
        if args.failed:
            frame = frame[~frame["passed"].astype(bool)]
        frame = frame.sort_values("evaluated_at", ascending=False).head(args.limit)
    rows = [] if frame.empty else frame.to_dict("records")
    for r in rows:
        r["result"] = "PASS" if r["passed"] else ("FAIL" if r["severity"] == "error" else "WARN")
        r["observed"] = short(r.get("observed_text") or r.get("observed_value"), 70)
    emit(args, rows, format_table(rows, ["evaluated_at", "component", "partition_key", "check_name", "result",
                                         "observed", "threshold_text"], {"observed": 70}) if rows else "no check results")
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

    p = sub.add_parser("metrics", help="metric history of a component (with --anomalies)")
    p.add_argument("component")
    p.add_argument("--metric", help="which metric (omit to list them)")
    p.add_argument("--slice", help="key=value, e.g. pickup_zone=Airport (window metrics)")
    p.add_argument("--anomalies", action="store_true", help="mark anomalous points (seasonal and rolling rules)")
    add_json_flag(p)
    p.set_defaults(func=_metrics)

    p = sub.add_parser("checks", help="declared test results, newest first")
    p.add_argument("--component")
    p.add_argument("--failed", action="store_true", help="only failed or warned")
    p.add_argument("--limit", type=int, default=50)
    add_json_flag(p)
    p.set_defaults(func=_checks)
