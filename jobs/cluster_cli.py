"""``tracelake cluster up|down|status|env``: the scale-out profile's local cluster on this machine.

The servers (PostgreSQL 15, SeaweedFS, a Spark master and two workers, the MLflow server,
dagster-daemon, optionally Spark Connect) are started by ``scale/cluster.sh`` - plain shell, so
an operator can read exactly what runs, and CI can call it without Python. This module only
finds the script and passes the answer through; ``env`` prints the variables that point every
other ``tracelake`` command at the cluster (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess

from tracelake.lineage.cli_support import CliError
from tracelake.lineage.settings import repo_root

__all__ = ["cluster_script", "register"]


def cluster_script() -> str:
    script = repo_root() / "scale" / "cluster.sh"
    if not script.is_file():
        raise CliError(f"no {script}: `tracelake cluster` needs the source checkout (scale/ is not installed)")
    return str(script)


def _cluster(args: argparse.Namespace) -> int:
    cmd = ["bash", cluster_script(), args.action]
    if args.action == "up" and args.connect:
        cmd.append("--connect")
    env = dict(os.environ)
    if args.dir:
        env["TRACELAKE_CLUSTER_DIR"] = os.path.abspath(args.dir)
    return subprocess.run(cmd, env=env, check=False).returncode


def register(sub: argparse._SubParsersAction) -> None:
    cluster = sub.add_parser("cluster", help="start, stop or inspect the local scale-out cluster (scale/cluster.sh)")
    cluster.add_argument("action", choices=["up", "down", "status", "env"],
                         help="up: start every server; down: stop what up started; status; "
                              "env: the variables to export")
    cluster.add_argument("--connect", action="store_true", help="(up) also start a Spark Connect server on the cluster")
    cluster.add_argument("--dir", help="where the cluster keeps its state (default TRACELAKE_CLUSTER_DIR or .cluster)")
    cluster.set_defaults(func=_cluster)
