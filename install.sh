#!/usr/bin/env bash
# Installs Tracelake from scratch on a fresh machine (idempotent: a second run only checks).
#   1. a virtual environment in .venv with the pinned Python packages (constraints.txt);
#   2. the Delta Lake Spark jars from Maven Central into jars/lib (listed in jars/pom.xml);
#   3. Tracelake's drift profile aggregator, compiled with javac into jars/lib (monitors/drift/jvm);
#   4. the OpenLineage Spark listener into jars/openlineage-lib (jars/openlineage/pom.xml), for
#      capturing Spark jobs that run outside Dagster (docs/openlineage.md);
#   5. (first) Graphviz, Pango and a font from Debian's packages, for compliance reports (apt-get);
#   6. with --cluster only: the scale-out profile's extras (scale/install.sh: PostgreSQL 15,
#      SeaweedFS built from its Go module, the s3a jars, psycopg2/boto3/dagster-postgres).
# Runs and tests never download anything; everything they need comes from here.
set -euo pipefail
cd "$(dirname "$0")"

WITH_CLUSTER=0
for arg in "$@"; do
  case "$arg" in
    --cluster) WITH_CLUSTER=1 ;;
    *) echo "install.sh: unknown option $arg (use --cluster to add the scale-out profile's extras)" >&2; exit 2 ;;
  esac
done

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

# --- Compliance report tools (Debian packages) -------------------------------------------------
# Graphviz (`dot`) lays out the lineage graphs of compliance reports; WeasyPrint (a Python package,
# below) prints their PDFs with Pango and needs a font. Installed with apt-get when missing (as
# root, or with password-less sudo); otherwise this says exactly what to install.
report_pkgs=(graphviz libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core)
if command -v dpkg-query >/dev/null; then
  missing=()
  for pkg in "${report_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if (( ${#missing[@]} )); then
    as_root=()
    if [[ "$(id -u)" -ne 0 ]]; then
      if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        as_root=(sudo)
      else
        fail "compliance reports need the Debian packages: ${missing[*]} (Graphviz for the lineage graphs, Pango and a font for the PDFs); install them as root: apt-get install -y ${missing[*]}"
      fi
    fi
    echo "==> installing Debian packages for compliance reports: ${missing[*]}"
    "${as_root[@]}" apt-get update -qq \
      && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || fail "apt-get could not install ${missing[*]} (see above); compliance reports need them"
  else
    echo "==> Graphviz, Pango and fonts for compliance reports already installed"
  fi
else
  command -v dot >/dev/null || fail "no Graphviz 'dot' on PATH; compliance reports need it (install the graphviz package of your system)"
  echo "==> not a Debian system: make sure Pango (libpango-1.0, libpangoft2-1.0) and a TrueType font are installed for PDF reports"
fi

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
  # dagster-postgres (cluster extras, --no-deps) pins dagster one patch behind ours: the one
  # mismatch allowed; any other broken requirement still fails the install.
  if ! check_out="$("$VENV/bin/python" -m pip check 2>&1)"; then
    broken="$(grep -v '^dagster-postgres [0-9.]* has requirement dagster==' <<<"$check_out" || true)"
    [[ -z "$broken" ]] || fail "pip check found broken requirements:"$'\n'"$broken"
  fi
  echo "$py_stamp" > "$VENV/.tracelake-stamp"
else
  echo "==> Python packages already installed ($VENV)"
fi

# Maven prints ANSI reset codes even with -B and -Dstyle.color=never (its console library does);
# in a log or CI output they read as garbage, so they are stripped (the exit status is Maven's: pipefail).
mvn_quiet() { mvn -q -B --no-transfer-progress -Dstyle.color=never "$@" 2>&1 | sed -u 's/\x1b\[[0-9;]*[A-Za-z]//g'; }

# --- Delta Lake jars -------------------------------------------------------------------------
jar_stamp="$(stamp_of jars/pom.xml)"
if [[ "$(cat jars/lib/.stamp 2>/dev/null)" != "$jar_stamp" ]]; then
  echo "==> fetching Delta Lake jars from Maven Central into jars/lib"
  rm -rf jars/lib
  mvn_quiet -f jars/pom.xml dependency:copy-dependencies \
      -DoutputDirectory="$PWD/jars/lib" -DincludeScope=runtime \
    || fail "could not fetch the Delta jars with Maven (see the error above); check access to Maven Central"
  ls jars/lib/delta-spark_*.jar >/dev/null 2>&1 || fail "jars/lib has no delta-spark jar after the Maven fetch"
  echo "$jar_stamp" > jars/lib/.stamp
else
  echo "==> Delta jars already fetched (jars/lib)"
fi

# --- Drift profile aggregator (Tracelake's own JVM code) ---------------------------------------
# Drift profiles count every column of a row in one pass inside Spark's JVM
# (monitors/drift/jvm/); compiled here against the installed PySpark's own jars, so it always
# matches the Spark that loads it, and put beside the Delta jars (every session loads jars/lib).
profile_src=(monitors/drift/jvm/tracelake/profiles/*.java)
pyspark_jars="$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
profile_stamp="$(stamp_of "${profile_src[@]}")-$(basename "$(ls "$pyspark_jars"/spark-sql_*.jar)")"
if [[ "$(cat jars/lib/.profiles-stamp 2>/dev/null)" != "$profile_stamp" || ! -f jars/lib/tracelake-profiles.jar ]]; then
  echo "==> compiling the drift profile aggregator into jars/lib/tracelake-profiles.jar"
  command -v javac >/dev/null && command -v jar >/dev/null \
    || fail "no 'javac'/'jar' on PATH; drift profiles compile a small Spark aggregator with the JDK (apt-get install openjdk-17-jdk-headless)"
  build="$(mktemp -d)"
  javac --release 17 -Xlint:all,-path -Werror -cp "$pyspark_jars/*" -d "$build" "${profile_src[@]}" \
    || fail "could not compile ${profile_src[*]} against $pyspark_jars (see the error above)"
  jar cf jars/lib/tracelake-profiles.jar -C "$build" . || fail "could not write jars/lib/tracelake-profiles.jar"
  rm -rf "$build"
  echo "$profile_stamp" > jars/lib/.profiles-stamp
else
  echo "==> drift profile aggregator already compiled (jars/lib/tracelake-profiles.jar)"
fi

# --- OpenLineage Spark listener ---------------------------------------------------------------
# Kept out of jars/lib: Tracelake's own Spark sessions never load it; external jobs attach it
# (`tracelake openlineage spark-conf` prints the flags).
ol_stamp="$(stamp_of jars/openlineage/pom.xml)"
if [[ "$(cat jars/openlineage-lib/.stamp 2>/dev/null)" != "$ol_stamp" ]]; then
  echo "==> fetching the OpenLineage Spark listener from Maven Central into jars/openlineage-lib"
  rm -rf jars/openlineage-lib
  mvn_quiet -f jars/openlineage/pom.xml dependency:copy-dependencies \
      -DoutputDirectory="$PWD/jars/openlineage-lib" -DincludeScope=runtime \
    || fail "could not fetch the OpenLineage Spark listener with Maven (see the error above); check access to Maven Central"
  ls jars/openlineage-lib/openlineage-spark_*.jar >/dev/null 2>&1 \
    || fail "jars/openlineage-lib has no openlineage-spark jar after the Maven fetch"
  echo "$ol_stamp" > jars/openlineage-lib/.stamp
else
  echo "==> OpenLineage Spark listener already fetched (jars/openlineage-lib)"
fi

# --- Cluster extras (--cluster) ---------------------------------------------------------------
# The scale-out profile (docs/scaling.md): kept in its own script so the embedded install stays
# exactly what it was.
if (( WITH_CLUSTER )); then
  bash scale/install.sh || fail "the cluster extras did not install (see above)"
fi

echo "==> installed: $("$VENV/bin/python" -c 'import pyspark, delta, dagster, mlflow; print(f"pyspark {pyspark.__version__}, dagster {dagster.__version__}, mlflow {mlflow.__version__}")'), $(ls jars/lib/*.jar | wc -l) jars"
