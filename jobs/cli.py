"""The ``tracelake`` command: each package contributes its subcommands here."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from tracelake.lineage.cli_support import CliError, OneLineErrorParser, add_home_flag, int_in, port, progress_note
from tracelake.lineage.integrity import cli as integrity_cli
from tracelake.lineage.openlineage import cli as openlineage_cli
from tracelake.lineage.query import cli as query_cli
from tracelake.monitors.alerts import cli as alerts_cli
from tracelake.monitors.checks import cli as checks_cli
from tracelake.monitors.compliance import cli as compliance_cli
from tracelake.monitors.drift import cli as drift_cli
from tracelake.monitors.metrics import cli as metrics_cli

from . import cluster_cli
from .process_exit import exit_after_handlers

__all__ = ["build_parser", "main"]


def _monitor_evidence(lake, walker, nodes):
    """Drift and anomalies for ``review`` (imported when a review runs, not at start-up)."""
    from tracelake.monitors.review import monitor_evidence

    return monitor_evidence(lake, walker, nodes)


def _dagster_home(lake_home: str) -> Path:
    """The Dagster instance that belongs to the lakehouse ``lake_home``.

    $DAGSTER_HOME when set; else ``./dagster_home`` for the default ``./lakehouse`` (what the
    README shows); else ``<lakehouse>/_dagster``, so two lakehouses never share one run history and
    ``demo --fresh`` starts both over. A new instance gets the repository's dagster.yaml (run
    monitoring, telemetry off)."""
    from .demo import INSTANCE_DIR

    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    lake = Path(lake_home).resolve()
    local = Path.cwd() / "dagster_home"
    if lake == (Path.cwd() / "lakehouse").resolve() and (local / "dagster.yaml").exists():
        home = local
    else:
        home = lake / INSTANCE_DIR
        home.mkdir(parents=True, exist_ok=True)
        template = Path(__file__).resolve().parents[1] / "dagster_home" / "dagster.yaml"
        if template.exists() and not (home / "dagster.yaml").exists():
            shutil.copyfile(template, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    return home.resolve()


def _faults(text: str) -> list[str]:
    """``--faults``: comma-separated ``kind@DATE[..END][:N]``, checked while parsing ('' for none)."""
    from tracelake.assets.faults import parse_fault

    specs = [f.strip() for f in text.split(",") if f.strip()]
    for spec in specs:
        try:
            parse_fault(spec)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return specs


def _demo_home(home: str) -> None:
    """The demo writes into its home only: a new folder, an empty one, or a demo's own."""
    from tracelake.lineage.settings import is_local_uri, to_local_path

    if not is_local_uri(home):
        return  # an object store (the scale-out profile): the demo writes under that prefix only
    path = to_local_path(home)
    if path.exists() and not path.is_dir():
        raise CliError(f"--home {home} is a file; give a folder for the demo lakehouse")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and (not parent.is_dir() or not os.access(parent, os.W_OK)):
        raise CliError(f"cannot create the demo lakehouse {home}: {parent} is not a writable folder")
    if path.is_dir() and not os.access(path, os.W_OK):
        raise CliError(f"cannot write into {home}; give a folder you can write to")


def _demo_preflight(home: str, days: int, config, fresh: bool) -> None:
    """What ``run_demo`` would refuse, refused before anything is created or deleted - the
    lakehouse's Dagster instance folder, or (``--fresh``) the previous demo."""
    from dataclasses import asdict
    from datetime import date, timedelta

    from .demo import _check_continuation, _holds_data, _load_state

    state = None if fresh else _load_state(home)
    if state is not None:
        _check_continuation(home, state, asdict(config))
        first = (date.fromisoformat(state["last_day"]) + timedelta(days=1)) if state.get("last_day") \
            else date.fromisoformat(config.start)
    else:
        if not fresh and _holds_data(home):
            raise CliError(f"{home} already holds data that is not a demo; use an empty folder (--home)")
        first = date.fromisoformat(config.start)
    last = first + timedelta(days=days - 1)
    if last >= date.today():
        raise CliError(f"the simulation would reach {last}, which is not in the past; use fewer --days")


def _demo(args: argparse.Namespace) -> int:
    from tracelake.lineage import load_settings

    from .compliance import demo_month_to_date
    from .demo import DemoConfig, run_demo, wipe_demo
    from .summary import print_summary

    home = load_settings(home=args.home).home
    _demo_home(home)
    config = DemoConfig(seed=args.seed, trips_per_day=args.trips_per_day,
                        faults=args.faults if args.faults is not None else DemoConfig().faults)
    _demo_preflight(home, args.days, config, args.fresh)
    if args.fresh:
        wipe_demo(home)  # before the instance is created: it lives in the lakehouse unless configured
    dagster_home = _dagster_home(home)
    progress_note(f"tracelake demo: lakehouse {home}, Dagster instance {dagster_home}")
    result = run_demo(home, args.days, config, progress=not args.no_progress)
    demo_month_to_date(home, result["last_day"])   # the compliance report of the month the demo stopped in
    print_summary(home, result, dagster_home)
    return 0


def _ui(args: argparse.Namespace) -> int:
    """The Dagster UI on this lakehouse and instance, with the runbooks and reports it links to."""
    import subprocess

    from tracelake.lineage import load_settings

    from .demo import demo_window_end
    from .docs_server import DocsServer

    home = load_settings(home=args.home).home
    dagster_home = _dagster_home(home)
    workspace = Path.cwd() / "workspace.yaml"
    cmd = [str(Path(sys.executable).with_name("dagster")), "dev", "-h", "127.0.0.1", "-p", str(args.port)]
    cmd += ["-w", str(workspace)] if workspace.exists() else ["-m", "tracelake.jobs.definitions"]
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "TRACELAKE_HOME": home}
    end = demo_window_end(home)
    if end and "TRACELAKE_PARTITIONS_END" not in os.environ:
        env["TRACELAKE_PARTITIONS_END"] = end  # the UI shows the demo's days, not a year of empty partitions
    with DocsServer(Path(home) / "reports", port=args.docs_port) as docs:
        env.setdefault("TRACELAKE_RUNBOOK_BASE", f"{docs.url}/runbooks")
        env.setdefault("TRACELAKE_REPORTS_BASE", f"{docs.url}/reports")
        print(f"tracelake ui: Dagster at http://127.0.0.1:{args.port}, runbooks and reports at {docs.url} "
              f"(DAGSTER_HOME={dagster_home}); Ctrl-C stops both", file=sys.stderr)
        child = subprocess.Popen(cmd, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.terminate()
            return child.wait(timeout=30)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="tracelake", description="Audit, lineage and monitoring for batch ML pipelines.")
    add_home_flag(parser, top=True)
    parser.add_argument("--json", action="store_true", default=False,
                        help="machine-readable JSON instead of a table (commands that answer with one)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineErrorParser)

    demo = sub.add_parser("demo", help="run the reference pipeline over simulated days and summarise")
    demo.add_argument("--days", type=int_in(1, 3650, "days"), default=21,
                      help="simulated days to run (default 21: three weeks)")
    demo.add_argument("--seed", type=int_in(0, 2**32 - 1), default=7)
    demo.add_argument("--trips-per-day", type=int_in(1, 1_000_000, "trips"), default=2000)
    demo.add_argument("--faults", type=_faults, help="comma-separated faults, e.g. 'etl_bug@2026-01-20' ('' for none)")
    demo.add_argument("--fresh", action="store_true", help="delete the previous demo lakehouse and start over")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)

    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on this lakehouse and instance")
    ui.add_argument("--port", type=port, default=3000)
    ui.add_argument("--docs-port", type=port, default=3030, help="where the runbooks and reports are served")
    ui.set_defaults(func=_ui)

    query_cli.register(sub, review_evidence=(_monitor_evidence,))
    integrity_cli.register(sub)
    openlineage_cli.register(sub)
    alerts_cli.register(sub)
    metrics_cli.register(sub)
    checks_cli.register(sub)
    drift_cli.register(sub, _drift_targets)
    compliance_cli.register(sub)
    cluster_cli.register(sub)
    _everywhere(parser)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found: dict[int, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.setdefault(id(child), child)
    return list(found.values())


def _everywhere(parser: argparse.ArgumentParser, top: bool = True) -> bool:
    """``--home`` (and ``--json`` where the command answers in JSON) on every subcommand too, so
    both go before or after it; absent there, the value given earlier stands (SUPPRESS). Every
    parser reports its errors in one line. Returns whether some command below speaks JSON."""
    children = _subparsers(parser)
    speaks_json = "--json" in parser._option_string_actions and not top
    for child in children:
        child.__class__ = OneLineErrorParser if type(child) is argparse.ArgumentParser else child.__class__
        speaks_json = _everywhere(child, top=False) or speaks_json
    if not top:
        if "--home" not in parser._option_string_actions:
            add_home_flag(parser)
        if speaks_json and "--json" not in parser._option_string_actions:
            parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                                help="machine-readable JSON instead of a table")
        parser.set_defaults(_speaks_json="--json" in parser._option_string_actions)
    return speaks_json


def _drift_targets():
    from tracelake.assets import DRIFT_TARGETS

    return DRIFT_TARGETS


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:   # --help (0), or a usage error already said in one line (2): an exit code
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.json and not getattr(args, "_speaks_json", True):
        print(f"tracelake: error: `tracelake {args.command}` has no JSON output; drop --json", file=sys.stderr)
        return 2
    if args.home:
        os.environ["TRACELAKE_HOME"] = args.home
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"tracelake: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tracelake: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `tracelake runs | head`: the reader left, nothing to say
        _silence_stdout()
        return 0
    except Exception as exc:  # a bug, not bad input: still one line (TRACELAKE_DEBUG=1 shows the traceback)
        if os.environ.get("TRACELAKE_DEBUG"):
            raise
        print(f"tracelake: internal error: {type(exc).__name__}: {_one_line(exc)} (a bug - run again with "
              "TRACELAKE_DEBUG=1 for the traceback and report it)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] or type(exc).__name__


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run() -> NoReturn:
    """The ``tracelake`` console command (see jobs/process_exit.py for why it ends the way it does)."""
    exit_after_handlers(main)


if __name__ == "__main__":
    run()
