# Sourced by every scale/ script: where the local cluster keeps its state, which ports it binds
# (all on 127.0.0.1, none of them a server's default, so it never collides with a developer's
# own PostgreSQL, MinIO, Spark or MLflow), and the helpers that start and stop one service.
# Every value can be overridden from the environment; `tracelake cluster up` passes them through.
SCALE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$SCALE_DIR")
export TRACELAKE_CLUSTER_DIR=${TRACELAKE_CLUSTER_DIR:-$REPO/.cluster}
D=$TRACELAKE_CLUSTER_DIR
VENV=${TRACELAKE_VENV:-$REPO/.venv}
case "$VENV" in /*) ;; *) VENV=$REPO/$VENV ;; esac
PG_PORT=${TRACELAKE_CLUSTER_PG_PORT:-55432}
S3_PORT=${TRACELAKE_CLUSTER_S3_PORT:-18333}
SPARK_PORT=${TRACELAKE_CLUSTER_SPARK_PORT:-17077}
SPARK_UI_PORT=${TRACELAKE_CLUSTER_SPARK_UI_PORT:-18090}      # worker UIs: +1, +2
CONNECT_PORT=${TRACELAKE_CLUSTER_CONNECT_PORT:-15012}
MLFLOW_PORT=${TRACELAKE_CLUSTER_MLFLOW_PORT:-15000}
WORKER_CORES=${TRACELAKE_CLUSTER_WORKER_CORES:-4}        # virtual cores: 4 apps of 2 executors share 2 real ones
WORKER_MEMORY=${TRACELAKE_CLUSTER_WORKER_MEMORY:-2g}
S3_KEY=${TRACELAKE_CLUSTER_S3_KEY:-tracelake}
S3_SECRET=${TRACELAKE_CLUSTER_S3_SECRET:-tracelake-local-secret}
PG_BIN=${TRACELAKE_CLUSTER_PG_BIN:-/usr/lib/postgresql/15/bin}

# A pid file whose process still runs *this* program (pid files go stale and pids get reused).
pid_is() {  # pid_is FILE PATTERN
  [[ -f "$1" ]] || return 1
  local p; p=$(cat "$1")
  kill -0 "$p" 2>/dev/null && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- "$2"
}

# Stop the process (group) recorded in a pid file, only if it is still ours; SIGKILL after ~15 s.
stop_pid() {  # stop_pid FILE PATTERN [group]
  local file=$1 pattern=$2 group=${3:-}
  if pid_is "$file" "$pattern"; then
    local p; p=$(cat "$file")
    if [[ -n "$group" ]]; then kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p"; else kill -TERM "$p"; fi
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$p" 2>/dev/null; then
      echo "  $pattern (pid $p) did not stop on SIGTERM; sending SIGKILL" >&2
      if [[ -n "$group" ]]; then kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"; else kill -KILL "$p"; fi
    fi
  fi
  rm -f "$file"
}

# Wait until a command succeeds (every 0.25 s), at most SECONDS; say how long it took.
wait_for() {  # wait_for SECONDS WHAT COMMAND...
  local limit=$1 what=$2; shift 2
  local start; start=$(date +%s.%N)
  for _ in $(seq 1 $((limit * 4))); do
    if "$@" >/dev/null 2>&1; then
      printf '  %-28s ready after %.1f s\n' "$what" "$(echo "$(date +%s.%N) - $start" | bc)"; return 0
    fi
    sleep 0.25
  done
  echo "  $what not ready after ${limit} s" >&2; return 1
}

port_free() { ! (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_open() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
