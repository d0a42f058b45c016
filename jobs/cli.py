"""The ``tracelake`` command: each package contributes its subcommands here."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tracelake.lineage.cli_support import CliError, OneLineErrorParser, add_home_flag, int_in, port
from tracelake.lineage.integrity import cli as integrity_cli
from tracelake.lineage.openlineage import cli as openlineage_cli
from tracelake.lineage.query import cli as query_cli
from tracelake.monitors.alerts import cli as alerts_cli
from tracelake.monitors.checks import cli as checks_cli
from tracelake.monitors.compliance import cli as compliance_cli
from tracelake.monitors.metrics import cli as metrics_cli
from tracelake.monitors.drift import cli as drift_cli

__all__ = ["main", "build_parser"]


def _dagster_home() -> Path:
    """$DAGSTER_HOME, else ./dagster_home (the repository's), else ~/.tracelake/dagster_home."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    local = Path.cwd() / "dagster_home"
    home = local if (local / "dagster.yaml").exists() else Path.home() / ".tracelake" / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
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
        raise CliError(f"the demo runs on a local folder, not {home}; give --home a folder")
    path = to_local_path(home)
    if path.exists() and not path.is_dir():
        raise CliError(f"--home {home} is a file; give a folder for the demo lakehouse")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and (not parent.is_dir() or not os.access(parent, os.W_OK)):
        raise CliError(f"cannot create the demo lakehouse {home}: {parent} is not a writable folder")
    if path.is_dir() and not os.access(path, os.W_OK):
        raise CliError(f"cannot write into {home}; give a folder you can write to")


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo
    from .summary import print_summary

    from tracelake.lineage import load_settings

    home = load_settings(home=args.home).home
    _demo_home(home)
    config = DemoConfig(seed=args.seed, trips_per_day=args.trips_per_day,
                        faults=args.faults if args.faults is not None else DemoConfig().faults)
    dagster_home = _dagster_home()
    print(f"tracelake demo: lakehouse {home}, Dagster instance {dagster_home}", file=sys.stderr)
    result = run_demo(home, args.days, config, fresh=args.fresh, progress=not args.no_progress)
    print_summary(home, result, dagster_home)
    return 0


def _ui(args: argparse.Namespace) -> int:
    """The Dagster UI on this lakehouse and instance, with the runbooks and reports it links to."""
    import subprocess

    from tracelake.lineage import load_settings

    from .demo import demo_window_end
    from .docs_server import DocsServer

    dagster_home = _dagster_home()
    home = load_settings(home=args.home).home
    workspace = Path.cwd() / "workspace.yaml"
    cmd = [str(Path(sys.executable).with_name("dagster")), "dev", "-h", "127.0.0.1", "-p", str(args.port)]
    cmd += ["-w", str(workspace)] if workspace.exists() else ["-m", "tracelake.jobs.definitions"]
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "TRACELAKE_HOME": home}
    end = demo_window_end(home)
    if end and "TRACELAKE_PARTITIONS_END" not in os.environ:
        env["TRACELAKE_PARTITIONS_END"] = end  # the UI shows the demo's days, not a year of empty partitions
    with DocsServer(Path(home) / "reports", port=args.docs_port) as docs:
        env.setdefault("TRACELAKE_RUNBOOK_BASE", f"{docs.url}/runbooks")
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

    query_cli.register(sub)
    integrity_cli.register(sub)
    openlineage_cli.register(sub)
    alerts_cli.register(sub)
    metrics_cli.register(sub)
    checks_cli.register(sub)
    drift_cli.register(sub, _drift_targets)
    compliance_cli.register(sub)
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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
