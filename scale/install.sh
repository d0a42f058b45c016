#!/usr/bin/env bash
# Installs the cluster extras of the scale-out profile (called by `./install.sh --cluster`):
#   1. PostgreSQL 15 from Debian's packages (apt-get) when /usr/lib/postgresql/15 is missing:
#      the audit journal, the Dagster instance and the MLflow backend;
#   2. SeaweedFS (`weed`), the S3-compatible object store, built from its Go module (pinned) into
#      scale/bin/weed - about 9 minutes on 2 cores the first time, then copied from a build cache
#      (~/.cache/tracelake/seaweedfs/<version>, like ~/.m2 for the jars);
#   3. hadoop-aws 3.5.0 + the slim AWS SDK v2 from Maven Central into jars/s3a-lib (jars/s3a/pom.xml);
#   4. the Python extras into .venv: `.[cluster]` (psycopg2, boto3, the Spark Connect client's gRPC
#      extras) and dagster-postgres with --no-deps (PyPI's newest pins dagster one patch behind ours).
# Idempotent: a second run only checks. Runs and tests never download anything.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${TRACELAKE_VENV:-.venv}"
WEED_MODULE=github.com/seaweedfs/seaweedfs
WEED_VERSION=v0.0.0-20261109003541-7506e5f91cd6   # SeaweedFS 4.53 ("30GB 4.53"): has `weed mini`
CACHE="${TRACELAKE_CACHE_DIR:-$HOME/.cache/tracelake}"

fail() { echo "scale/install.sh: $*" >&2; exit 1; }
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else fail "needs root for: $* (run it as root, or install the package yourself)"; fi
}

[[ -x "$VENV/bin/python" ]] || fail "no $VENV; run ./install.sh first"

# --- 1. PostgreSQL 15 ---------------------------------------------------------------------------
if [[ -x /usr/lib/postgresql/15/bin/initdb ]]; then
  echo "==> PostgreSQL 15 already installed"
else
  command -v apt-get >/dev/null || fail "PostgreSQL 15 is missing and this is not a Debian system; install postgresql-15"
  echo "==> installing PostgreSQL 15 from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
    || fail "apt-get could not install postgresql-15 (see above)"
fi
# initdb and pg_ctl refuse to run as root: the local cluster runs them as the package's user.
id postgres >/dev/null 2>&1 || fail "no 'postgres' OS user (the postgresql-15 package creates it)"

# --- 2. SeaweedFS -------------------------------------------------------------------------------
weed_cached="$CACHE/seaweedfs/$WEED_VERSION/weed"
if [[ -x scale/bin/weed && "$(cat scale/bin/.weed-version 2>/dev/null)" == "$WEED_VERSION" ]]; then
  echo "==> SeaweedFS already built (scale/bin/weed)"
else
  if [[ ! -x "$weed_cached" ]]; then
    command -v go >/dev/null || fail "no 'go' on PATH; SeaweedFS is built from its Go module (Go 1.24+ needed)"
    echo "==> building SeaweedFS $WEED_VERSION from the Go module proxy (about 9 minutes the first time)"
    started=$(date +%s)
    # `go install module@version` refuses modules whose go.mod has replace directives (SeaweedFS has
    # one), so download the module and build it as the main module.
    src=$(GOFLAGS=-mod=mod go mod download -json "$WEED_MODULE@$WEED_VERSION" \
          | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
      || fail "could not download $WEED_MODULE@$WEED_VERSION from the Go module proxy"
    build="$CACHE/seaweedfs/$WEED_VERSION/src"
    rm -rf "$build"; mkdir -p "$(dirname "$build")"; cp -r "$src" "$build"; chmod -R u+w "$build"
    (cd "$build" && GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags="-s -w" -o "$weed_cached.tmp" ./weed) \
      || fail "the SeaweedFS build failed (see above)"
    mv "$weed_cached.tmp" "$weed_cached"; rm -rf "$build"
    echo "    built in $(( $(date +%s) - started )) s"
  fi
  mkdir -p scale/bin
  cp "$weed_cached" scale/bin/weed.tmp && mv scale/bin/weed.tmp scale/bin/weed
  echo "$WEED_VERSION" > scale/bin/.weed-version
  echo "==> SeaweedFS $("scale/bin/weed" version 2>/dev/null | head -1) in scale/bin/weed"
fi

# Maven prints ANSI reset codes even with -B and -Dstyle.color=never (its console library does);
# in a log or CI output they read as garbage, so they are stripped (the exit status is Maven's: pipefail).
mvn_quiet() { mvn -q -B --no-transfer-progress -Dstyle.color=never "$@" 2>&1 | sed -u 's/\x1b\[[0-9;]*[A-Za-z]//g'; }

# --- 3. s3a jars --------------------------------------------------------------------------------
s3a_stamp="$(stamp_of jars/s3a/pom.xml)"
if [[ "$(cat jars/s3a-lib/.stamp 2>/dev/null)" != "$s3a_stamp" ]]; then
  echo "==> fetching hadoop-aws and the AWS SDK v2 (S3 modules) from Maven Central into jars/s3a-lib"
  rm -rf jars/s3a-lib
  mvn_quiet -f jars/s3a/pom.xml dependency:copy-dependencies \
      -DoutputDirectory="$PWD/jars/s3a-lib" -DincludeScope=runtime \
      -DexcludeGroupIds=io.netty -DexcludeArtifactIds=commons-codec,commons-logging,httpclient,httpcore \
    || fail "could not fetch the s3a jars with Maven (see the error above); check access to Maven Central"
  ls jars/s3a-lib/hadoop-aws-*.jar >/dev/null 2>&1 || fail "jars/s3a-lib has no hadoop-aws jar after the Maven fetch"
  echo "$s3a_stamp" > jars/s3a-lib/.stamp
else
  echo "==> s3a jars already fetched (jars/s3a-lib)"
fi

# --- 4. Python extras ---------------------------------------------------------------------------
py_stamp="$(stamp_of pyproject.toml constraints.txt)"
if [[ "$(cat "$VENV/.tracelake-cluster-stamp" 2>/dev/null)" != "$py_stamp" ]]; then
  echo "==> installing the cluster's Python extras (psycopg2, boto3, Spark Connect client, dagster-postgres)"
  "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev,cluster]"
  "$VENV/bin/python" -m pip install --quiet --no-deps -c constraints.txt dagster-postgres
  echo "$py_stamp" > "$VENV/.tracelake-cluster-stamp"
else
  echo "==> cluster Python extras already installed"
fi
"$VENV/bin/python" -c 'import psycopg2, boto3, dagster_postgres, grpc_status, zstandard' 2>/dev/null \
  || fail "the cluster's Python extras do not import; remove $VENV/.tracelake-cluster-stamp and run again"
echo "==> cluster extras installed: PostgreSQL $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}'), SeaweedFS in scale/bin, $(ls jars/s3a-lib/*.jar | wc -l) s3a jars"
