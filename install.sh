#!/usr/bin/env bash
# Installs Tracelake from scratch on a fresh machine (idempotent: a second run only checks).
#   1. a virtual environment in .venv with the pinned Python packages (constraints.txt);
#   2. the Delta Lake Spark jars from Maven Central into jars/lib (listed in jars/pom.xml).
# Runs and tests never download anything; everything they need comes from here.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV="${TRACELAKE_VENV:-.venv}"

fail() { echo "install.sh: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || fail "no '$PYTHON' on PATH; install Python 3.11+ or set PYTHON=/path/to/python3.11"
"$PYTHON" - <<'PY' || fail "Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)"
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
command -v java >/dev/null || fail "no 'java' on PATH; Spark needs a JDK 17 (apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null || fail "no 'mvn' on PATH; Maven fetches the Delta jars (apt-get install maven)"

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# --- Python packages -------------------------------------------------------------------------
py_stamp="$(stamp_of pyproject.toml constraints.txt)"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "==> creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [[ "$(cat "$VENV/.tracelake-stamp" 2>/dev/null)" != "$py_stamp" ]]; then
  echo "==> installing Python packages (about 2 GB, a few minutes the first time)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev]"
  "$VENV/bin/python" -m pip check
  echo "$py_stamp" > "$VENV/.tracelake-stamp"
else
  echo "==> Python packages already installed ($VENV)"
fi

# --- Delta Lake jars -------------------------------------------------------------------------
jar_stamp="$(stamp_of jars/pom.xml)"
if [[ "$(cat jars/lib/.stamp 2>/dev/null)" != "$jar_stamp" ]]; then
  echo "==> fetching Delta Lake jars from Maven Central into jars/lib"
  rm -rf jars/lib
  mvn -q -B -f jars/pom.xml dependency:copy-dependencies \
      -DoutputDirectory="$PWD/jars/lib" -DincludeScope=runtime \
    || fail "could not fetch the Delta jars with Maven (see the error above); check access to Maven Central"
  ls jars/lib/delta-spark_*.jar >/dev/null 2>&1 || fail "jars/lib has no delta-spark jar after the Maven fetch"
  echo "$jar_stamp" > jars/lib/.stamp
else
  echo "==> Delta jars already fetched (jars/lib)"
fi

echo "==> installed: $("$VENV/bin/python" -c 'import pyspark, delta, dagster, mlflow; print(f"pyspark {pyspark.__version__}, dagster {dagster.__version__}, mlflow {mlflow.__version__}")'), $(ls jars/lib/*.jar | wc -l) jars"
