"""``tracelake metrics``: the metric history of a component, with anomalies marked."""

from __future__ import annotations

import argparse

from tracelake.lineage import open_lakehouse
from tracelake.lineage.cli_support import CliError, add_json_flag, emit, format_table

from tracelake.monitors.metrics.anomaly import RollingBand, SeasonalBand, detect
from tracelake.monitors.metrics.history import metric_names, run_metric, window_metric

__all__ = ["register"]


def _lake(args: argparse.Namespace):
    return open_lakehouse(getattr(args, "home", None))


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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="metric history of a component (with --anomalies)")
    p.add_argument("component")
    p.add_argument("--metric", help="which metric (omit to list them)")
    p.add_argument("--slice", help="key=value, e.g. pickup_zone=Airport (window metrics)")
    p.add_argument("--anomalies", action="store_true", help="mark anomalous points (seasonal and rolling rules)")
    add_json_flag(p)
    p.set_defaults(func=_metrics)
