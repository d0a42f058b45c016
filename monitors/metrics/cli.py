"""``tracelake metrics``: the metric history of a component, with anomalies marked."""

from __future__ import annotations

import argparse
import argparse as _argparse

from tracelake.lineage.cli_support import CliError, add_json_flag, emit, format_table, lake_for
from tracelake.monitors.metrics.anomaly import assess, default_rules
from tracelake.monitors.metrics.history import metric_names, run_metric, window_metric

__all__ = ["register"]


def _lake(args: argparse.Namespace):
    return lake_for(args)


def _slice_arg(text: str) -> str:
    """``--slice key=value`` (checked while parsing)."""
    key, sep, value = (text or "").partition("=")
    if not sep or not key.strip() or not value.strip():
        raise _argparse.ArgumentTypeError(f"{text!r}: write it as key=value, e.g. pickup_zone=Airport")
    return text


def _parse_slice(text: str | None) -> tuple[str, str]:
    if not text:
        return "all", "all"
    key, _, value = text.partition("=")
    return key.strip(), value.strip()


def _known_component(lake, component: str) -> None:
    from tracelake.lineage import METRICS

    runs = lake.store.component_runs(include_open=True)
    known = set(runs["component"]) if not runs.empty else set()
    metrics = lake.store.read(METRICS)
    known |= set(metrics["component"]) if not metrics.empty else set()
    if component not in known:
        raise CliError(f"no component {component!r} has runs or metrics; components: "
                       f"{', '.join(sorted(known)) or 'none yet'}")


def _known_slice(lake, component: str, metric: str, key: str, value: str) -> None:
    from tracelake.lineage import METRICS

    frame = lake.store.read(METRICS)
    hit = frame[(frame["component"] == component) & (frame["metric"] == metric)] if not frame.empty else frame
    pairs = zip(hit["slice_key"], hit["slice_value"].astype(str), strict=True) if not hit.empty else []
    slices = sorted({f"{k}={v}" for k, v in pairs if k != "all"})
    if f"{key}={value}" not in slices:
        shown = ", ".join(slices[:12]) + (" ..." if len(slices) > 12 else "")
        raise CliError(f"{component} has no {metric} for slice {key}={value}; its slices: {shown or 'none'}")


def _metrics(args: argparse.Namespace) -> int:
    lake = _lake(args)
    _known_component(lake, args.component)
    names = metric_names(lake, args.component)
    if not args.metric:
        if args.slice or args.anomalies:
            raise CliError("--slice and --anomalies need --metric M (omit them to list the metrics)")
        payload = {"component": args.component, **names}
        emit(args, payload, f"{args.component}: window metrics {', '.join(names['window']) or '-'}; "
                            f"per-run metrics {', '.join(names['run'])}")
        return 0
    key, value = _parse_slice(args.slice)
    if args.metric in names["window"]:
        if args.slice:
            _known_slice(lake, args.component, args.metric, key, value)
        frame = window_metric(lake, args.component, args.metric, slice_key=key, slice_value=value)
        series = frame.groupby("time")["value"].mean()
    elif args.metric in names["run"]:
        if args.slice:
            raise CliError(f"{args.metric} is a per-run metric of {args.component}: it has no slices (drop --slice)")
        frame = run_metric(lake, args.component, args.metric)
        series = frame.set_index("time")["value"]
    else:
        raise CliError(f"{args.component} has no metric {args.metric!r}; it has "
                       f"{', '.join(names['window'] + names['run'])}")
    if args.anomalies:
        rows = [{"time": t, "value": v, "verdict": verdict, "anomaly": a.describe() if a else ""}
                for t, v, verdict, a in assess(series, default_rules())]
        columns = ["time", "value", "verdict", "anomaly"]
    else:
        rows = [{"time": t, "value": v} for t, v in series.items()]
        columns = ["time", "value"]
    text = format_table(rows, columns, {"anomaly": 90}) if rows else "no values"
    if args.anomalies and rows:
        flagged = sum(r["verdict"] == "anomaly" for r in rows)
        learning = sum(r["verdict"] == "learning" for r in rows)
        text += (f"\n{flagged} of {len(rows) - learning} judged points anomalous"
                 + (f"; {learning} learning (no earlier same weekday yet)" if learning else ""))
    emit(args, rows, text)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="metric history of a component (with --anomalies)")
    p.add_argument("component")
    p.add_argument("--metric", help="which metric (omit to list them)")
    p.add_argument("--slice", type=_slice_arg, help="key=value, e.g. pickup_zone=Airport (window metrics)")
    p.add_argument("--anomalies", action="store_true",
                   help="judge each point against the same weekday of earlier weeks (first week: learning)")
    add_json_flag(p)
    p.set_defaults(func=_metrics)
