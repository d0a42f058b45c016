"""``tracelake openlineage export|serve|import|resend|status|spark-conf``."""

from __future__ import annotations

import argparse
import os
import signal
import time
from typing import Any

from tracelake.lineage.cli_support import CliError, add_json_flag, emit, format_table, int_in, lake_for, output_file
from tracelake.lineage.lakehouse import open_lakehouse

__all__ = ["register"]


def _lake(args: argparse.Namespace):
    """The lakehouse a command reads; a typo in --home is an error, never a new empty lakehouse."""
    return lake_for(args)


def _receiving_lake(args: argparse.Namespace):
    """``serve`` and ``import`` record other tools' runs, which may be a lakehouse's first records."""
    return open_lakehouse(getattr(args, "home", None))


def _when(text: str | None):
    from tracelake.lineage.query.runs import parse_when

    try:
        return parse_when(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _enabled(client: Any) -> Any:
    """``client``, unless it sends nothing (OPENLINEAGE_DISABLED=true): then the command refuses,
    rather than report events as exported or resent - and empty the outbox - that went nowhere."""
    from tracelake.lineage.openlineage.transport import DISABLED_MESSAGE, is_disabled

    if is_disabled(client):
        raise CliError(f"{DISABLED_MESSAGE}; unset OPENLINEAGE_DISABLED to send events")
    return client


def _export(args: argparse.Namespace) -> int:
    from tracelake.lineage.openlineage.history import ExportFailed, export_events, export_to
    from tracelake.lineage.openlineage.transport import DeliveryFailed, describe, file_client, make_client, send

    since, until = _when(args.since), _when(args.until)
    out_file = output_file(args.out, force=args.force) if args.out else None  # checked before anything is read
    lake = _lake(args)
    if args.parallel < 1:
        raise CliError("--parallel must be at least 1")
    if args.component is not None:
        known = set(lake.store.component_runs()["component"])
        if args.component not in known:
            raise CliError(f"no runs of component {args.component!r}; components with runs: {', '.join(sorted(known))}")
    if out_file is not None:
        # The client's own file transport, so the lines are exactly what the live publisher writes.
        out_path = out_file
        client = _enabled(file_client(out_path))
        out_path.unlink(missing_ok=True)
        target: dict[str, Any] = {"file": str(out_path)}
        try:
            result = export_events(lake, lambda event: send(client, event, retries=0), since=since, until=until,
                                   component=args.component)
        except DeliveryFailed as exc:
            raise CliError(f"cannot write {out_path}: {exc}") from None
    else:
        if not lake.settings.openlineage_configured:
            raise CliError("no OpenLineage backend is configured: set OPENLINEAGE_URL (or OPENLINEAGE_CONFIG / an "
                           "openlineage.yml), or write the events to a file with --out FILE")
        target = describe(_enabled(make_client(lake.settings)))
        try:
            result = export_to(lake, lambda: make_client(lake.settings), workers=args.parallel,
                               retries=lake.settings.openlineage_retries, since=since, until=until,
                               component=args.component)
        except ExportFailed as exc:
            resume = exc.resume_since.isoformat() if hasattr(exc.resume_since, "isoformat") else exc.resume_since
            raise CliError(f"{exc}; nothing was skipped - continue with --since {resume}") from None
    payload = {"runs": result.runs, "events": result.events, "by_type": result.by_type,
               "seconds": round(result.seconds, 3), "events_per_second": round(result.events_per_second, 1),
               "target": target}
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(result.by_type.items()))
    emit(args, payload, f"exported {result.events} events of {result.runs} runs ({kinds or 'none'}) to "
                        f"{target.get('url') or target.get('file') or target.get('kind')} in {result.seconds:.1f} s "
                        f"({result.events_per_second:.0f} events/s)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from tracelake.lineage.openlineage.receiver import serve

    lake = _receiving_lake(args)
    port = lake.settings.openlineage_port if args.port is None else args.port

    def ready(server: Any) -> None:
        host, bound = server.server_address[:2]
        print(f"tracelake openlineage: listening on http://{host}:{bound}/api/v1/lineage "
              f"(lakehouse {lake.settings.home}); Ctrl-C stops", flush=True)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        serve(lake, args.host, port, ready=ready)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{port}: {exc.strerror or exc}") from None
    return 0


def _import(args: argparse.Namespace) -> int:
    from tracelake.lineage.openlineage.received import InvalidEvent
    from tracelake.lineage.openlineage.receiver import import_path

    try:
        stored, duplicates, done = import_path(_receiving_lake(args), args.path)
    except (FileNotFoundError, InvalidEvent) as exc:
        raise CliError(str(exc)) from None
    payload = {"stored": stored, "duplicates": duplicates, "recorded": done.recorded, "ignored": len(done.ignored),
               "errors": done.errors}
    lines = [f"stored {stored} events ({duplicates} already there); recorded {len(done.recorded)} external runs, "
             f"{len(done.ignored)} runs wrote nothing"]
    if done.recorded:
        lines.append(format_table(done.recorded, ["run_id", "component", "status", "output", "verified"],
                                  {"component": 60}))
    for err in done.errors:
        lines.append(f"error: run {err['openlineage_run_id']}: {err['error']}")
    emit(args, payload, "\n".join(lines))
    return 1 if done.errors else 0


def _resend(args: argparse.Namespace) -> int:
    from tracelake.lineage.openlineage.history import resend
    from tracelake.lineage.openlineage.transport import describe, make_client

    lake = _lake(args)
    client = _enabled(make_client(lake.settings))
    result = resend(lake, client)
    payload = {"sent": result.sent, "failed": result.failed, "remaining": result.remaining,
               "problems": result.problems, "target": describe(client)}
    human = f"resent {result.sent} events; {result.remaining} still undelivered"
    if result.failed:
        human += " (the backend still fails: see `tracelake openlineage status`)"
    human += "".join(f"\n  - {p}" for p in result.problems)
    emit(args, payload, human)
    return 1 if result.failed else 0


def _publishing(settings: Any) -> str:
    from tracelake.lineage.openlineage.transport import default_events_file
    from tracelake.lineage.settings import openlineage_disabled

    if not settings.openlineage:
        return "off (OPENLINEAGE_DISABLED=true)" if openlineage_disabled(os.environ) else "off"
    if settings.openlineage_configured:
        return "the OpenLineage client's configuration"
    return f"JSON lines in {default_events_file(settings)}"


def _status(args: argparse.Namespace) -> int:
    from tracelake.lineage.openlineage.outbox import Outbox
    from tracelake.lineage.openlineage.publisher import COOLDOWN_SECONDS
    from tracelake.lineage.openlineage.received import ReceivedStore

    settings = _lake(args).settings
    outbox = Outbox(settings.openlineage_dir)
    pending = outbox.pending()
    notes = outbox.notes()
    publishing = _publishing(settings)
    failed = outbox.backend_failure()
    backoff_left = 0.0 if failed is None else max(0.0, failed[1] + COOLDOWN_SECONDS - time.time())
    payload = {"publishing": publishing, "namespace": settings.openlineage_namespace,
               "counters": outbox.counters(), "undelivered": len(pending),
               "last_error": notes.get("last_error", (None,))[0],
               "backing_off_seconds": round(backoff_left, 1),
               "undelivered_events": [p.__dict__ for p in pending[:20]],
               "received": ReceivedStore(settings.openlineage_dir).summary()}
    counters = payload["counters"]
    lines = [f"publishing   {publishing} (namespace {settings.openlineage_namespace})",
             f"delivered    {counters.get('delivered', 0)} events, resent {counters.get('resent', 0)}",
             f"undelivered  {len(pending)}" + (f" - last error: {payload['last_error']}" if pending else "")]
    if failed is not None and backoff_left > 0:
        lines.append(f"backing off  {backoff_left:.0f} s more: the backend failed ({failed[0]}); new events go to "
                     "the outbox")
    if pending:
        lines.append(format_table([p.__dict__ for p in pending[:20]], ["run_id", "kind", "event_type", "attempts",
                                                                        "reason"], {"reason": 80}))
        lines.append("send them again with `tracelake openlineage resend`")
    received = payload["received"]
    lines.append(f"received     {received['events']} events; runs: "
                 + (", ".join(f"{k} {v}" for k, v in sorted(received['runs'].items())) or "none")
                 + f"; waiting {received.get('waiting', 0)}")
    emit(args, payload, "\n".join(lines))
    return 0


def _spark_conf(args: argparse.Namespace) -> int:
    from tracelake.lineage.openlineage.spark_listener import as_submit_flags, listener_conf, listener_jars
    from tracelake.lineage.spark import delta_jars

    settings = _lake(args).settings
    try:
        jars = delta_jars(settings.jars_dir) + listener_jars(settings)
    except (FileNotFoundError, RuntimeError) as exc:
        raise CliError(str(exc)) from None
    conf = listener_conf(settings, url=args.url, file=args.file, namespace=args.namespace)
    emit(args, {"jars": jars, "conf": conf}, as_submit_flags(jars, conf))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("openlineage", help="OpenLineage: publish runs as events, receive other producers' runs")
    osub = p.add_subparsers(dest="openlineage_command", required=True)

    q = osub.add_parser("export", help="replay recorded runs as OpenLineage events (fill a backend with history)")
    q.add_argument("--since", help="runs started at or after (ISO date/time, UTC)")
    q.add_argument("--until", help="runs started before (ISO date/time, UTC)")
    q.add_argument("--component", help="only this component")
    q.add_argument("--out", help="write JSON lines to this file instead of the configured transport")
    q.add_argument("--force", action="store_true", help="replace an existing --out file")
    q.add_argument("--parallel", type=int, default=4,
                   help="runs sent at once to the backend (a run's events stay in order; default 4)")
    add_json_flag(q)
    q.set_defaults(func=_export)

    q = osub.add_parser("serve", help="an OpenLineage HTTP endpoint recording other producers' runs")
    q.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    q.add_argument("--port", type=int_in(0, 65535), help="port (default TRACELAKE_OPENLINEAGE_PORT or 5055; 0 = any free port)")
    q.set_defaults(func=_serve)

    q = osub.add_parser("import", help="record the runs in a file or folder of OpenLineage events")
    q.add_argument("path", help="a JSON-lines file, a JSON file (event or array), or a folder of them")
    add_json_flag(q)
    q.set_defaults(func=_import)

    q = osub.add_parser("resend", help="deliver the events the outbox holds again")
    add_json_flag(q)
    q.set_defaults(func=_resend)

    q = osub.add_parser("status", help="where events go, what was delivered, what waits, what was received")
    add_json_flag(q)
    q.set_defaults(func=_status)

    q = osub.add_parser("spark-conf", help="spark-submit flags that attach the OpenLineage listener to a job")
    q.add_argument("--url", help="receiver URL (default http://127.0.0.1:<TRACELAKE_OPENLINEAGE_PORT>)")
    q.add_argument("--file", help="write events to this JSON-lines file instead (then `tracelake openlineage import`)")
    q.add_argument("--namespace", default="spark", help="OpenLineage job namespace of the Spark jobs")
    add_json_flag(q)
    q.set_defaults(func=_spark_conf)
