#!/usr/bin/env bash
# MLflow tracking server: runs and models in PostgreSQL (database `mlflow`), artifacts proxied to
# the object store (s3://mlflow/artifacts), so clients need only MLFLOW_TRACKING_URI. Job
# execution is off (it would start 8 more processes and keep state in /dev/shm).
# usage: mlflow.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/../env.sh"
DIR=$D/mlflow; PID=$DIR/mlflow.pid
case "${1:-}" in
  start)
    mkdir -p "$DIR"
    if pid_is "$PID" mlflow; then echo "  mlflow already running"; exit 0; fi
    port_free "$MLFLOW_PORT" || { echo "port $MLFLOW_PORT is taken (TRACELAKE_CLUSTER_MLFLOW_PORT)" >&2; exit 1; }
    MLFLOW_S3_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET \
    AWS_DEFAULT_REGION=us-east-1 MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false TMPDIR=$DIR \
    setsid nohup "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
      --backend-store-uri "postgresql+psycopg2://postgres@127.0.0.1:$PG_PORT/mlflow" \
      --serve-artifacts --artifacts-destination s3://mlflow/artifacts \
      >"$DIR/mlflow.log" 2>&1 </dev/null &
    echo $! >"$PID"
    healthy() { pid_is "$PID" mlflow || exit 1; curl -sf "http://127.0.0.1:$MLFLOW_PORT/health"; }
    wait_for 240 "MLflow server :$MLFLOW_PORT" healthy || { tail -20 "$DIR/mlflow.log" >&2; exit 1; } ;;
  stop)
    stop_pid "$PID" mlflow group ;;
  status)
    pid_is "$PID" mlflow && curl -sf "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
