"""The ``tracelake`` command: each package contributes its subcommands here."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tracelake.lineage.cli_support import CliError, OneLineErrorParser
from tracelake.lineage.integrity import cli as integrity_cli
from tracelake.lineage.query import cli as query_cli
from tracelake.monitors.alerts import cli as alerts_cli
from tracelake.monitors.checks import cli as checks_cli
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


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo
    from .summary import print_summary

    from tracelake.lineage import load_settings

    home = load_settings(home=args.home).home
    config = DemoConfig(seed=args.seed, trips_per_day=args.trips_per_day,
                        faults=args.faults.split(",") if args.faults is not None else DemoConfig().faults)
    dagster_home = _dagster_home()
    print(f"tracelake demo: lakehouse {home}, Dagster instance {dagster_home}", file=sys.stderr)
    result = run_demo(home, args.days, config, fresh=args.fresh, progress=not args.no_progress)
    print_summary(home, result, dagster_home)
    return 0


def _ui(args: argparse.Namespace) -> int:
    dagster_home = _dagster_home()
    workspace = Path.cwd() / "workspace.yaml"
    cmd = [str(Path(sys.executable).with_name("dagster")), "dev", "-p", str(args.port)]
    if workspace.exists():
        cmd += ["-w", str(workspace)]
    else:
        cmd += ["-m", "tracelake.jobs.definitions"]
    print(f"DAGSTER_HOME={dagster_home} {' '.join(cmd)}", file=sys.stderr)
    os.execv(cmd[0], cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="tracelake", description="Audit, lineage and monitoring for batch ML pipelines.")
    parser.add_argument("--home", help="lakehouse root (default: $TRACELAKE_HOME or ./lakehouse)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineErrorParser)

    demo = sub.add_parser("demo", help="run the reference pipeline over simulated days and summarise")
    demo.add_argument("--days", type=int, default=21, help="simulated days to run (default 21: three weeks)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--trips-per-day", type=int, default=2000)
    demo.add_argument("--faults", help="comma-separated faults, e.g. 'etl_bug@2026-01-20' ('' for none)")
    demo.add_argument("--fresh", action="store_true", help="delete the previous demo lakehouse and start over")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)

    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on this lakehouse and instance")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=_ui)

    query_cli.register(sub)
    integrity_cli.register(sub)
    alerts_cli.register(sub)
    metrics_cli.register(sub)
    checks_cli.register(sub)
    drift_cli.register(sub, _drift_targets)
    return parser


def _drift_targets():
    from tracelake.assets import DRIFT_TARGETS

    return DRIFT_TARGETS


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.home:
        os.environ["TRACELAKE_HOME"] = args.home
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"tracelake: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tracelake: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
