#!/usr/bin/env bash
# PostgreSQL 15 in $TRACELAKE_CLUSTER_DIR/postgres, bound to 127.0.0.1, databases `tracelake`
# (the audit journal), `dagster` (the instance) and `mlflow` (the tracking server's backend).
# initdb and pg_ctl refuse to run as root, so they run as the package's `postgres` OS user.
# fsync and synchronous_commit stay ON: a journal record is durable when its commit returns,
# which is the whole point of putting the journal here. usage: postgres.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/../env.sh"
PGDIR=$D/postgres
as_pg() { if [[ "$(id -u)" -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-}" in
  start)
    mkdir -p "$PGDIR"
    [[ "$(id -u)" -eq 0 ]] && chown postgres: "$PGDIR"
    chmod 700 "$PGDIR"
    if [[ ! -f "$PGDIR/db/PG_VERSION" ]]; then
      # trust on loopback only: the server listens on 127.0.0.1 and its socket sits in $PGDIR (0700)
      as_pg "$PG_BIN/initdb" -D "$PGDIR/db" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PGDIR/initdb.log"
    fi
    port_free "$PG_PORT" || { echo "port $PG_PORT is taken: another PostgreSQL? (TRACELAKE_CLUSTER_PG_PORT)" >&2; exit 1; }
    as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/db" -l "$PGDIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PGDIR -c max_connections=200" start >/dev/null
    for db in tracelake dagster mlflow; do
      as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
        || as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db"
    done ;;
  stop)
    if [[ -f "$PGDIR/db/postmaster.pid" ]]; then as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/db" -m fast -w -t 60 stop >/dev/null; fi ;;
  status)
    [[ -f "$PGDIR/db/postmaster.pid" ]] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
