#!/usr/bin/env bash
# dagster-daemon (schedules, sensors, the run queue) on a Dagster instance stored in PostgreSQL,
# loading the project's own code location (workspace.yaml) with the cluster's environment.
# usage: dagster.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/../env.sh"
export DAGSTER_HOME=$D/dagster
PID=$DAGSTER_HOME/daemon.pid; LOG=$DAGSTER_HOME/daemon.log
case "${1:-}" in
  start)
    mkdir -p "$DAGSTER_HOME"
    if pid_is "$PID" dagster-daemon; then echo "  dagster-daemon already running"; exit 0; fi
    sed -e "s/@PG_PORT@/$PG_PORT/" "$SCALE_DIR/conf/dagster.yaml" >"$DAGSTER_HOME/dagster.yaml"
    set -a; source "$D/cluster.env"; set +a
    cd "$REPO"
    setsid nohup "$VENV/bin/dagster-daemon" run -w "$REPO/workspace.yaml" >"$LOG" 2>&1 </dev/null &
    echo $! >"$PID"
    started() { pid_is "$PID" dagster-daemon || exit 1; grep -q "Instance is configured with the following daemons" "$LOG"; }
    wait_for 240 "dagster-daemon" started || { tail -20 "$LOG" >&2; exit 1; } ;;
  stop)
    stop_pid "$PID" dagster-daemon group ;;
  status)
    pid_is "$PID" dagster-daemon ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
