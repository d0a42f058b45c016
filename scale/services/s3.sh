#!/usr/bin/env bash
# SeaweedFS `weed mini` (master + volume + filer + S3 gateway in one process), built by
# scale/install.sh, data in $TRACELAKE_CLUSTER_DIR/s3, buckets `lakehouse` and `mlflow`.
# It honours S3 conditional puts (If-None-Match: *), which is what makes several delta-rs writers
# of one audit table safe (docs/scaling.md). Telemetry off; everything on 127.0.0.1.
# usage: s3.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/../env.sh"
DIR=$D/s3; PID=$DIR/weed.pid
WEED=$SCALE_DIR/bin/weed
# weed derives its gRPC ports (+10000) and hard-codes unix sockets /tmp/seaweedfs-<svc>-grpc-<port>.sock
MASTER=$((S3_PORT + 1000)); VOLUME=$((S3_PORT + 1007)); FILER=$((S3_PORT + 555)); ADMIN=$((S3_PORT + 3))
case "${1:-}" in
  start)
    [[ -x "$WEED" ]] || { echo "no $WEED; run ./install.sh --cluster" >&2; exit 1; }
    mkdir -p "$DIR/data"
    if pid_is "$PID" bin/weed; then echo "  weed already running"; exit 0; fi
    for p in "$S3_PORT" "$MASTER" "$VOLUME" "$FILER" "$ADMIN"; do
      port_free "$p" || { echo "port $p is taken (TRACELAKE_CLUSTER_S3_PORT moves all of SeaweedFS's ports)" >&2; exit 1; }
    done
    cat >"$DIR/s3.json" <<JSON
{"identities": [{"name": "tracelake", "credentials": [{"accessKey": "$S3_KEY", "secretKey": "$S3_SECRET"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
    chmod 600 "$DIR/s3.json"
    setsid nohup "$WEED" mini -dir="$DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -master.port=$MASTER -volume.port=$VOLUME -filer.port=$FILER -s3.port=$S3_PORT \
      -admin.port=$ADMIN -admin.port.legacy=0 -admin.ui=false \
      -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -master.telemetry=false \
      -s3.config="$DIR/s3.json" -bucket=lakehouse,mlflow \
      -filer.localSocket="$DIR/filer.sock" -s3.localSocket="$DIR/s3.sock" \
      >"$DIR/weed.log" 2>&1 </dev/null &
    echo $! >"$PID"
    # ready when the S3 port answers (anonymous -> 403) and the buckets exist (a signed HEAD)
    wait_for 120 "SeaweedFS S3 :$S3_PORT" curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" \
      || { tail -20 "$DIR/weed.log" >&2; exit 1; } ;;
  stop)
    stop_pid "$PID" bin/weed group
    rm -f /tmp/seaweedfs-{master,volume,filer,s3,admin}-grpc-{$((MASTER+10000)),$((VOLUME+10000)),$((FILER+10000)),$((S3_PORT+10000)),$((ADMIN+10000))}.sock ;;
  status)
    pid_is "$PID" bin/weed && port_open "$S3_PORT" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
