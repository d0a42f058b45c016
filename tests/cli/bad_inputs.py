"""Bad ``tracelake`` command lines, one table for every command, and the runner that tries them.

Each case is run in a fresh process (``python -m tracelake.jobs.cli ...``) against a private copy
of a lakehouse, in an empty working folder, and must end the way bad input ends: exit code 2,
exactly one line on stderr that names the problem (``expect`` is a piece of it), no traceback,
and nothing written where it must not be - the working folder stays empty, the paths a case names
in ``untouched`` are as they were, and (checked once for the whole table) the lakehouse is byte
for byte what it was.

Used by ``tests/cli/test_bad_inputs.py`` and ``benchmarks/cli_bad_inputs.py``.

Placeholders in ``argv``: ``{home}`` the lakehouse copy, ``{run}`` a succeeded ``cleaned_trips``
run, ``{missing_run}`` a well-formed id of no run, ``{out}`` a folder for outputs, ``{file}`` an
existing file, ``{full}`` a folder holding a file, ``{empty}`` an empty folder, ``{typo}`` a
folder that does not exist. ``--home {home}`` is added to every case that does not name its own
home - before the subcommand for even-numbered cases, after it for odd ones, since both work.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CASES", "Bad", "Outcome", "Workspace", "prepare", "run_all", "snapshot"]

MISSING_RUN = "01M89FZ4TYSEB82KNH1VRH01SK"


@dataclass(frozen=True)
class Bad:
    name: str
    argv: tuple[str, ...]
    expect: str                        # a piece of the one error line (case-insensitive)
    own_home: bool = False             # argv names its own --home (or none at all)
    spark: bool = False                # the command starts Spark before it can tell
    untouched: tuple[str, ...] = ()    # paths (placeholders allowed) that must not change
    owner: str = "cli"                 # who owns the command: cli, openlineage, compliance
    known: str = ""                    # a known failure in another owner's command: why (reported to them)
    no_dagster_home: bool = False      # run without $DAGSTER_HOME, as a user would (the demo makes its own)


def B(name: str, *argv: str, expect: str, **kw) -> Bad:
    return Bad(name, tuple(argv), expect, **kw)


TP = "tip_predictions"
CASES: list[Bad] = [
    # --- the command line itself -----------------------------------------------------------------
    B("no-command", expect="required: command", own_home=True),
    B("unknown-command", "bogus", expect="invalid choice: 'bogus'"),
    B("unknown-option", "runs", "--bogus", expect="unrecognized arguments: --bogus"),
    B("home-empty-string", "--home", "", "runs", expect="--home is empty", own_home=True),
    B("home-is-a-file-before", "--home", "{file}", "runs", expect="is a file, not a lakehouse folder",
      own_home=True, untouched=("{file}",)),
    B("home-is-a-file-after", "checks", "--home", "{file}", expect="is a file, not a lakehouse folder",
      own_home=True, untouched=("{file}",)),
    B("home-does-not-exist", "runs", "--home", "{typo}", expect="does not exist", own_home=True,
      untouched=("{typo}",)),
    B("home-holds-no-lakehouse", "audit", "status", "--home", "{empty}", expect="holds no lakehouse",
      own_home=True, untouched=("{empty}",)),
    B("json-where-there-is-none", "--json", "ui", expect="has no JSON output"),
    B("json-on-demo", "demo", "--json", expect="unrecognized arguments: --json"),

    # --- runs ------------------------------------------------------------------------------------
    B("runs-negative-limit", "runs", "--limit", "-1", expect="must be 0 (all) or a positive number"),
    B("runs-limit-not-a-number", "runs", "--limit", "ten", expect="'ten' is not a whole number"),
    B("runs-limit-fraction", "runs", "--limit", "1.5", expect="'1.5' is not a whole number"),
    B("runs-since-word", "runs", "--since", "yesterday", expect="is not a date or time"),
    B("runs-since-feb-30", "runs", "--since", "2026-02-30", expect="is not a date or time"),
    B("runs-until-year-99999", "runs", "--until", "99999-01-01", expect="is not a date or time"),
    B("runs-since-year-1", "runs", "--since", "0001-01-01", expect="out of range"),
    B("runs-empty-span", "runs", "--since", "2026-02-01", "--until", "2026-01-01", expect="empty time span"),
    B("runs-unknown-status", "runs", "--status", "done", expect="invalid choice: 'done'"),
    B("runs-unknown-component", "runs", "--component", "nope", expect="no runs of component 'nope'"),
    B("runs-unknown-partition", "runs", "--partition", "2099-01-01", expect="no runs of partition '2099-01-01'"),

    # --- run show --------------------------------------------------------------------------------
    B("run-show-id-beyond-time", "run", "show", "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
      expect="first 10 characters encode a time"),
    B("run-show-short-id", "run", "show", "nonsense", expect="is not a Tracelake run id"),
    B("run-show-bad-character", "run", "show", "01M89FZ4TYSEB82KNH1VRH01S!", expect="'!' never occurs"),
    B("run-show-unknown-run", "run", "show", "{missing_run}", expect=f"no component run {MISSING_RUN}"),
    B("run-show-unknown-uuid", "run", "show", "00000000-0000-4000-8000-000000000000",
      expect="no component run has OpenLineage run id"),
    B("run-show-missing-id", "run", "show", expect="required: run_id"),
    B("run-missing-subcommand", "run", expect="required: run_command"),

    # --- history and diff ------------------------------------------------------------------------
    B("history-unknown-component", "history", "nope", expect="no runs of component 'nope'"),
    B("history-bad-since", "history", "cleaned_trips", "--since", "last week", expect="is not a date or time"),
    B("history-empty-span", "history", "cleaned_trips", "--since", "2026-03-01", "--until", "2026-01-01",
      expect="empty time span"),
    B("history-missing-component", "history", expect="required: component"),
    B("history-unknown-status", "history", "cleaned_trips", "--status", "ok", expect="invalid choice: 'ok'"),
    B("diff-id-beyond-time", "diff", "ZZZZZZZZZZZZZZZZZZZZZZZZZZ", "{run}", expect="first 10 characters encode a time"),
    B("diff-unknown-run", "diff", "{run}", "{missing_run}", expect=f"no component run {MISSING_RUN}"),
    B("diff-one-run", "diff", "{run}", expect="required: run_b"),
    B("diff-garbage", "diff", "a", "b", expect="is not a Tracelake run id"),

    # --- trace -----------------------------------------------------------------------------------
    B("trace-unknown-table", "trace", "nope_table", expect="no table 'nope_table'"),
    B("trace-bad-table-name", "trace", "bad name!", expect="is not a table name"),
    B("trace-unknown-column", "trace", TP, "--where", "bogus_col > 1", expect="cannot evaluate --where"),
    B("trace-empty-where", "trace", TP, "--where", " ", expect="--where is empty"),
    B("trace-broken-where", "trace", TP, "--where", "pickup_date = ", expect="cannot evaluate --where"),
    B("trace-negative-version", "trace", TP, "--as-of", "-3", expect="versions count from 0"),
    B("trace-version-too-new", "trace", TP, "--as-of", "99999", expect="has no version 99999"),
    B("trace-as-of-word", "trace", TP, "--as-of", "yesterday", expect="neither a table version number nor an ISO time"),
    B("trace-as-of-before-table", "trace", TP, "--as-of", "1990-01-01", expect="did not exist at"),
    B("trace-unknown-format", "trace", TP, "--format", "png", expect="invalid choice: 'png'"),

    # --- impact ----------------------------------------------------------------------------------
    B("impact-unknown-table", "impact", "nope@3", expect="no table 'nope'"),
    B("impact-version-nobody-wrote", "impact", "cleaned_trips@99999", expect="no recorded run wrote"),
    B("impact-version-not-a-number", "impact", "cleaned_trips@x", expect="neither a run id nor TABLE@VERSION"),
    B("impact-garbage", "impact", "garbage", expect="neither a run id nor TABLE@VERSION"),
    B("impact-unknown-run", "impact", "{missing_run}", expect=f"no component run {MISSING_RUN}"),

    # --- flag, unflag, flags, review, upstream-checks --------------------------------------------
    B("flag-no-rows", "flag", TP, "--where", "pickup_date = '2099-01-01'", "--reason", "x", expect="nothing to flag"),
    B("flag-missing-where", "flag", TP, "--reason", "x", expect="required: --where"),
    B("flag-blank-reason", "flag", TP, "--where", "true", "--reason", "  ", expect="--reason is empty"),
    B("flag-unknown-table", "flag", "nope", "--where", "true", "--reason", "x", expect="no table 'nope'"),
    B("flag-unknown-column", "flag", TP, "--where", "nope_col = 1", "--reason", "x", expect="cannot evaluate --where"),
    B("unflag-unknown-flag", "unflag", "{missing_run}", expect="no active flag"),
    B("unflag-garbage", "unflag", "garbage", expect="is not a flag id"),
    B("flags-unknown-table", "flags", "--table", "nope", expect="no table 'nope'"),
    B("flags-bad-since", "flags", "--since", "soon", expect="is not a date or time"),
    B("review-top-zero", "review", "--top", "0", expect="must be a positive whole number"),
    B("review-top-negative", "review", "--top", "-5", expect="must be a positive whole number"),
    B("review-window-negative", "review", "--window", "-1", expect="out of range: give 0..366"),
    B("review-window-huge", "review", "--window", "100000", expect="out of range: give 0..366"),
    B("review-unknown-table", "review", "--table", "nope", expect="no table 'nope'"),
    B("upstream-unknown-table", "upstream-checks", "nope", expect="no table 'nope'"),
    B("upstream-unknown-column", "upstream-checks", TP, "--where", "bogus > 1", expect="cannot evaluate --where"),
    B("upstream-as-of-word", "upstream-checks", TP, "--as-of", "abc", expect="neither a table version number"),
    B("upstream-month-13", "upstream-checks", TP, "--since", "2026-13-01", expect="is not a date or time"),

    # --- sql and spark-sql -----------------------------------------------------------------------
    B("sql-division-by-zero", "sql", "SELECT 1/0", expect="DIVIDE_BY_ZERO", spark=True),
    B("sql-bad-cast", "sql", "SELECT CAST('abc' AS INT)", expect="CAST_INVALID_INPUT", spark=True),
    B("sql-write-refused", "sql", "DROP TABLE cleaned_trips", expect="the SQL surface is read-only"),
    B("sql-empty", "sql", "  ", expect="the statement is empty"),
    B("sql-unknown-table", "sql", "SELECT * FROM nope_table", expect="no table 'nope_table'"),
    B("sql-unknown-audit-table", "sql", "SELECT * FROM audit.nope", expect="no table 'audit.nope'"),
    B("sql-negative-limit", "sql", "SELECT 1", "--limit", "-1", expect="must be a positive whole number"),
    B("sql-zero-limit", "sql", "SELECT 1", "--limit", "0", expect="must be a positive whole number"),
    B("sql-read-outside", "sql", "SELECT * FROM text.`/etc/hostname`", expect="outside the lakehouse"),
    B("sql-typo", "sql", "SELEC 1", expect="cannot parse the statement"),
    B("sql-admin-without-reason", "sql", "ALTER TABLE cleaned_trips SET TBLPROPERTIES ('a' = 'b')", "--admin",
      expect="--admin needs --reason"),
    B("sql-retention-via-sql", "sql", "VACUUM cleaned_trips", "--admin", "--reason", "x",
      expect="never changed through SQL"),
    B("spark-sql-zero-limit", "spark-sql", "--limit", "0", expect="must be a positive whole number"),
    B("spark-sql-serve-bad-port", "spark-sql", "--serve", "--port", "70000", expect="is not a TCP port"),

    # --- reproduce -------------------------------------------------------------------------------
    B("reproduce-out-is-a-file", "reproduce", "{run}", "--out", "{file}", expect="is a file; give a folder",
      untouched=("{file}",)),
    B("reproduce-out-is-etc-hostname", "reproduce", "{run}", "--out", "/etc/hostname", expect="system folder",
      untouched=("/etc/hostname",)),
    B("reproduce-out-not-empty", "reproduce", "{run}", "--out", "{full}", expect="is not empty",
      untouched=("{full}",)),
    B("reproduce-out-in-delta-log", "reproduce", "{run}", "--out", "{home}/tables/cleaned_trips/_delta_log",
      expect="inside the lakehouse"),
    B("reproduce-out-in-lakehouse", "reproduce", "{run}", "--out", "{home}/repro", expect="inside the lakehouse",
      untouched=("{home}/repro",)),
    B("reproduce-out-holds-lakehouse", "reproduce", "{run}", "--out", "{out}", expect="inside the lakehouse",
      own_home=True),   # with --home {out}/lake (see _argv): the folder would hold the lakehouse
    B("reproduce-out-system-folder", "reproduce", "{run}", "--out", "/usr/lib/tracelake-repro",
      expect="system folder", untouched=("/usr/lib/tracelake-repro",)),
    B("reproduce-unknown-run", "reproduce", "{missing_run}", "--out", "{out}/new", expect="no component run",
      untouched=("{out}/new",)),
    B("reproduce-garbage-run", "reproduce", "garbage", "--out", "{out}/x", expect="is not a Tracelake run id",
      untouched=("{out}/x",)),
    B("reproduce-missing-out", "reproduce", "{run}", expect="required: --out"),
    B("reproduce-parent-is-a-file", "reproduce", "{run}", "--out", "{file}/sub", expect="is a file",
      untouched=("{file}",)),

    # --- audit, vacuum, retention ----------------------------------------------------------------
    B("audit-missing-subcommand", "audit", expect="required: audit_command"),
    B("audit-unknown-subcommand", "audit", "repair", expect="invalid choice: 'repair'"),
    B("reconcile-negative-age", "audit", "reconcile", "--min-age", "-1", expect="out of range"),
    B("reconcile-nan-age", "audit", "reconcile", "--min-age", "nan", expect="out of range"),
    B("verify-no-lakehouse", "audit", "verify", "--home", "{typo}", expect="does not exist", own_home=True,
      untouched=("{typo}",)),
    B("vacuum-nan", "vacuum", "--retain-days", "nan", expect="out of range"),
    B("vacuum-negative", "vacuum", "--retain-days", "-1", expect="out of range"),
    B("vacuum-infinite", "vacuum", "--retain-days", "inf", expect="out of range"),
    B("vacuum-huge", "vacuum", "--retain-days", "1e300", expect="out of range"),
    B("vacuum-word", "vacuum", "--retain-days", "week", expect="is not a number"),
    B("vacuum-below-horizon", "vacuum", "--retain-days", "30", expect="refusing to vacuum"),
    B("vacuum-unknown-table", "vacuum", "--table", "nope", expect="no table 'nope'"),
    B("audit-flush-no-lakehouse", "audit", "flush", "--home", "{typo}", expect="does not exist", own_home=True,
      untouched=("{typo}",)),
    B("audit-compact-empty-folder", "audit", "compact", "--home", "{empty}", expect="holds no lakehouse",
      own_home=True, untouched=("{empty}",)),
    B("audit-anchor-home-is-a-file", "audit", "anchor", "--home", "{file}", expect="is a file", own_home=True,
      untouched=("{file}",)),
    B("audit-status-json-twice", "audit", "status", "--json", "--json", "--bogus", expect="unrecognized arguments"),
    B("retention-verify-no-lakehouse", "retention", "verify", "--home", "{typo}", expect="does not exist",
      own_home=True, untouched=("{typo}",)),
    B("retention-missing-subcommand", "retention", expect="required: retention_command"),
    B("retention-unknown-subcommand", "retention", "shorten", expect="invalid choice: 'shorten'"),

    # --- alerts, metrics, checks -----------------------------------------------------------------
    B("alerts-ack-unknown", "alerts", "ack", "{missing_run}", expect="no alert"),
    B("alerts-ack-garbage", "alerts", "ack", "garbage", expect="is not an alert id"),
    B("alerts-resolve-missing-id", "alerts", "resolve", expect="required: alert_id"),
    B("alerts-unknown-status", "alerts", "--status", "closed", expect="invalid choice: 'closed'"),
    B("alerts-list-unknown-status", "alerts", "list", "--status", "closed", expect="invalid choice: 'closed'"),
    B("alerts-no-lakehouse", "alerts", "--home", "{typo}", expect="does not exist", own_home=True,
      untouched=("{typo}",)),
    B("alerts-resend-garbage", "alerts", "resend", "42", expect="is not an alert id"),
    B("metrics-unknown-component", "metrics", "nope", expect="no component 'nope'"),
    B("metrics-unknown-metric", "metrics", TP, "--metric", "nope", expect="has no metric 'nope'"),
    B("metrics-slice-without-value", "metrics", TP, "--metric", "recall", "--slice", "pickup_zone",
      expect="write it as key=value"),
    B("metrics-unknown-slice", "metrics", TP, "--metric", "recall", "--slice", "pickup_zone=Atlantis",
      expect="no recall for slice pickup_zone=Atlantis"),
    B("metrics-slice-without-metric", "metrics", TP, "--slice", "payment_type=cash", expect="need --metric"),
    B("metrics-slice-of-run-metric", "metrics", TP, "--metric", "output_rows", "--slice", "payment_type=cash",
      expect="per-run metric"),
    B("checks-negative-limit", "checks", "--limit", "-1", expect="must be 0 (all) or a positive number"),
    B("checks-unknown-component", "checks", "--component", "nope", expect="no component 'nope'"),
    B("checks-limit-word", "checks", "--limit", "all", expect="'all' is not a whole number"),

    # --- drift -----------------------------------------------------------------------------------
    B("drift-unknown-table", "drift", "nope", expect="is not a watched table"),
    B("drift-window-huge", "drift", "trip_features", "--window", "99999999d", expect="out of range: give 1d..3660d"),
    B("drift-window-zero-days", "drift", "trip_features", "--window", "0d", expect="out of range: give 1d..3660d"),
    B("drift-window-feb-30", "drift", "trip_features", "--window", "2026-02-30", expect="is not a window"),
    B("drift-window-reversed", "drift", "trip_features", "--window", "2026-01-20..2026-01-10",
      expect="is not a window"),
    B("drift-window-word", "drift", "trip_features", "--window", "last-week", expect="is not a window"),
    B("drift-window-millennia", "drift", "trip_features", "--window", "1900-01-01..2261-12-31",
      expect="is not a window"),
    B("drift-window-no-profiles", "drift", "trip_features", "--window", "2026-06-01", expect="no profiles of"),
    B("drift-unknown-reference", "drift", "trip_features", "--reference", "yesterday", expect="is not a reference"),
    B("drift-fixed-without-range", "drift", "trip_features", "--reference", "fixed:2026-01-10",
      expect="is not a reference"),
    B("drift-unknown-slice-key", "drift", "trip_features", "--slice", "bogus_key", expect="is sliced by"),
    B("drift-unknown-slice-value", "drift", "trip_features", "--slice", "pickup_zone=Atlantis",
      expect="no profiles of trip_features have pickup_zone=Atlantis"),
    B("drift-negative-sample", "drift", "trip_features", "--report", "--sample-rows", "-5",
      expect="out of range: give 100..200000"),
    B("drift-unsliced-table", "drift", "trip_labels", "--slice", "pickup_zone", expect="is not sliced"),

    # --- demo and ui -----------------------------------------------------------------------------
    B("demo-feb-30", "demo", "--faults", "etl_bug@2026-02-30", expect="is not a date"),
    B("demo-unknown-fault", "demo", "--faults", "meteor@2026-01-07", expect="unknown fault kind 'meteor'"),
    B("demo-fault-without-date", "demo", "--faults", "etl_bug", expect="needs a date"),
    B("demo-zero-days", "demo", "--days", "0", expect="out of range: give 1..3650"),
    B("demo-negative-days", "demo", "--days", "-3", expect="out of range: give 1..3650"),
    B("demo-days-into-the-future", "demo", "--days", "3000", "--home", "{out}/future-demo",
      expect="which is not in the past", own_home=True, untouched=("{out}/future-demo",), no_dagster_home=True),
    B("demo-zero-trips", "demo", "--trips-per-day", "0", expect="out of range"),
    B("demo-negative-seed", "demo", "--seed", "-1", expect="out of range"),
    B("demo-home-is-a-file", "demo", "--home", "{file}", expect="is a file", own_home=True,
      untouched=("{file}",)),
    B("demo-other-setup", "demo", "--days", "1", expect="different setup", no_dagster_home=True),
    B("demo-folder-not-a-demo", "demo", "--days", "1", "--home", "{full}", expect="not a demo", own_home=True,
      untouched=("{full}",), no_dagster_home=True),
    B("ui-port-zero", "ui", "--port", "0", expect="is not a TCP port"),
    B("ui-port-too-big", "ui", "--port", "70000", expect="is not a TCP port"),
    B("ui-docs-port-word", "ui", "--docs-port", "abc", expect="'abc' is not a whole number"),

    # --- cluster (another engineer's command) -----------------------------------------------------
    B("cluster-unknown-action", "cluster", "restart", expect="invalid choice: 'restart'", owner="cluster"),
    B("cluster-dir-missing", "cluster", "status", "--dir", expect="expected one argument", owner="cluster"),

    # --- openlineage (another engineer's command group) ------------------------------------------
    B("ol-missing-subcommand", "openlineage", expect="required: openlineage_command", owner="openlineage"),
    B("ol-export-bad-since", "openlineage", "export", "--since", "yesterday", expect="is not a date or time",
      owner="openlineage"),
    B("ol-export-unknown-component", "openlineage", "export", "--component", "nope", "--out", "{out}/ol.jsonl",
      expect="no runs of component 'nope'", owner="openlineage", untouched=("{out}/ol.jsonl",)),
    B("ol-import-missing-file", "openlineage", "import", "{out}/missing.jsonl", expect="missing.jsonl",
      owner="openlineage"),
    B("ol-serve-port-out-of-range", "openlineage", "serve", "--port", "99999", expect="port", owner="openlineage"),
    B("ol-export-no-backend", "openlineage", "export", expect="no OpenLineage backend is configured",
      owner="openlineage"),
    B("ol-serve-json", "openlineage", "serve", "--json", expect="unrecognized arguments: --json", owner="openlineage"),
    B("ol-spark-conf-url-missing", "openlineage", "spark-conf", "--url", expect="expected one argument",
      owner="openlineage"),
    B("ol-status-no-lakehouse", "openlineage", "status", "--home", "{typo}", expect="does not exist",
      own_home=True, owner="openlineage", untouched=("{typo}",)),
    B("ol-resend-unknown-option", "openlineage", "resend", "--all", expect="unrecognized arguments: --all",
      owner="openlineage"),
    B("ol-export-over-a-file", "openlineage", "export", "--out", "{file}", expect="exists and is not empty",
      owner="openlineage", untouched=("{file}",)),
    B("ol-export-into-etc", "openlineage", "export", "--out", "/etc/hostname", expect="system folder",
      owner="openlineage", untouched=("/etc/hostname",)),
    B("ol-export-into-a-folder", "openlineage", "export", "--out", "{full}", expect="is a folder",
      owner="openlineage", untouched=("{full}",)),

    # --- compliance reports (another engineer's command group) -----------------------------------
    B("report-missing-subcommand", "report", expect="required: report_command", owner="compliance"),
    B("report-period-reversed", "report", "period", "--from", "2026-02-01", "--to", "2026-01-01",
      expect="empty window", owner="compliance"),
    B("report-period-word", "report", "period", "--from", "January", "--to", "2026-01-31", expect="is not a day",
      owner="compliance"),
    B("report-unknown-model", "report", "model", "nope_model", expect="nope_model", owner="compliance"),
    B("report-unknown-version", "report", "model", "tip_model", "--version", "999", expect="999", owner="compliance"),
    B("report-verify-missing-file", "report", "verify", "{out}/missing.html", expect="no file", owner="compliance"),
    B("report-decision-unknown-column", "report", "decision", TP, "--where", "bogus > 1", expect="bogus",
      owner="compliance"),
    B("report-list-unknown-kind", "report", "list", "--kind", "weekly", expect="invalid choice: 'weekly'",
      owner="compliance"),
    B("report-list-no-lakehouse", "report", "list", "--home", "{typo}", expect="does not exist", own_home=True,
      owner="compliance", untouched=("{typo}",)),
    B("report-decision-negative-rows", "report", "decision", TP, "--where", "true", "--max-rows", "-1",
      expect="max-rows", owner="compliance"),
    B("report-out-is-a-file", "report", "model", "tip_model", "--out", "{file}", expect="is a file",
      owner="compliance", untouched=("{file}",)),
    B("report-out-system-folder", "report", "period", "--from", "2026-01-01", "--to", "2026-01-31", "--out", "/etc",
      expect="system folder", owner="compliance"),
]


@dataclass
class Workspace:
    """What the placeholders stand for, and the environment every case runs in."""

    root: Path
    home: str
    run: str
    env: dict[str, str]

    def fill(self, text: str) -> str:
        return text.format(home=self.home, run=self.run, missing_run=MISSING_RUN, out=self.root / "out",
                           file=self.root / "notes.txt", full=self.root / "full", empty=self.root / "empty",
                           typo=self.root / "typo" / "lakehouse")


def prepare(root: Path, source_home: str) -> Workspace:
    """A private copy of ``source_home`` under ``root`` and the files the placeholders name."""
    root.mkdir(parents=True, exist_ok=True)
    home = root / "lakehouse"
    if not home.exists():
        shutil.copytree(source_home, home)
    (root / "out").mkdir(exist_ok=True)
    (root / "notes.txt").write_text("a file, not a folder\n")
    (root / "full").mkdir(exist_ok=True)
    (root / "full" / "keep.txt").write_text("keep me\n")
    (root / "empty").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRACELAKE_", "OPENLINEAGE")) and k not in ("DAGSTER_HOME", "PYTEST_CURRENT_TEST")}
    env.update({"TRACELAKE_ANCHOR_DIR": str(root / "anchors"), "DAGSTER_HOME": str(root / "dagster"),
                "TRACELAKE_SPARK_MASTER": "local[1]", "TRACELAKE_SPARK_DRIVER_MEMORY": "1g",
                "TRACELAKE_SPARK_SHUFFLE_PARTITIONS": "1", "PYTHONUNBUFFERED": "1"})
    (root / "dagster").mkdir(exist_ok=True)
    return Workspace(root, str(home), _a_run(str(home), env), env)


def _a_run(home: str, env: dict[str, str]) -> str:
    """A succeeded cleaned_trips run of the lakehouse (asked of the CLI, in its own process)."""
    import json

    out = subprocess.run([sys.executable, "-m", "tracelake.jobs.cli", "runs", "--home", home, "--component",
                          "cleaned_trips", "--status", "succeeded", "--limit", "1", "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"cannot list the runs of {home}: {out.stderr.strip()}")
    return json.loads(out.stdout)[0]["run_id"]


def snapshot(path: str | Path) -> dict[str, tuple]:
    """Every file under ``path`` (or the file itself) with its size and content digest; folders too."""
    root = Path(path)
    if not root.exists():
        return {}
    if root.is_file():
        return {".": (root.stat().st_size, hashlib.sha256(root.read_bytes()).hexdigest())}
    out: dict[str, tuple] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_dir():
            out[rel + "/"] = ()
        elif p.is_file():
            out[rel] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@dataclass
class Outcome:
    case: Bad
    argv: list[str]
    code: int | None
    stderr: str
    stdout: str
    seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        err = self.stderr.strip().replace("\n", "\n      ")
        return (f"{self.case.name}: {'; '.join(self.problems)}\n    argv: {' '.join(self.argv)}\n"
                f"    exit {self.code}, stderr:\n      {err[-1500:]}")


def _argv(case: Bad, index: int, ws: Workspace) -> list[str]:
    args = [ws.fill(a) for a in case.argv]
    if case.name == "reproduce-out-holds-lakehouse":
        return ["--home", f"{ws.root / 'out' / 'lake'}", *args]
    if not case.own_home:
        # Both places work: before the subcommand for even cases, after it for odd ones.
        args = ["--home", ws.home, *args] if index % 2 == 0 or not args else [*args, "--home", ws.home]
    return args


def run_case(case: Bad, index: int, ws: Workspace, timeout: float = 900) -> Outcome:
    argv = _argv(case, index, ws)
    cwd = ws.root / "cwd" / case.name
    cwd.mkdir(parents=True, exist_ok=True)
    watched = [ws.fill(p) for p in case.untouched]
    before = {p: snapshot(p) for p in watched}
    started = time.perf_counter()
    try:
        env = {k: v for k, v in ws.env.items() if not (case.no_dagster_home and k == "DAGSTER_HOME")}
        done = subprocess.run([sys.executable, "-m", "tracelake.jobs.cli", *argv], capture_output=True, text=True,
                              env=env, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = None, str(exc.stdout or ""), f"timed out after {timeout:.0f} s\n{exc.stderr or ''}"
    result = Outcome(case, argv, code, err, out, time.perf_counter() - started)
    lines = [line for line in err.splitlines() if line.strip()]
    if code != 2:
        result.problems.append(f"exit code {code}, expected 2")
    if "Traceback" in err or "Traceback" in out:
        result.problems.append("a traceback")
    if len(lines) != 1:
        result.problems.append(f"{len(lines)} lines on stderr, expected exactly 1")
    elif not lines[0].startswith("tracelake") or "error:" not in lines[0]:
        result.problems.append("the stderr line is not a `tracelake...: error:` line")
    if lines and case.expect.lower() not in " ".join(lines).lower():
        result.problems.append(f"stderr does not say {case.expect!r}")
    written = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))
    if written:
        result.problems.append(f"wrote into the working folder: {', '.join(written[:5])}")
    for path in watched:
        if snapshot(path) != before[path]:
            result.problems.append(f"changed {path}")
    return result


def run_all(ws: Workspace, cases: list[Bad] | None = None, workers: int = 3, spark_workers: int = 2,
            progress=None) -> list[Outcome]:
    """Every case, in parallel threads (each a fresh process); Spark cases at most ``spark_workers``
    at a time. Results in table order."""
    cases = CASES if cases is None else cases
    spark_gate = threading.Semaphore(spark_workers)
    index = {c.name: i for i, c in enumerate(CASES)}

    def one(case: Bad) -> Outcome:
        if case.spark:
            with spark_gate:
                outcome = run_case(case, index.get(case.name, 0), ws)
        else:
            outcome = run_case(case, index.get(case.name, 0), ws)
        if progress is not None:
            progress(outcome)
        return outcome

    # Spark cases first: they are the long pole.
    ordered = sorted(cases, key=lambda c: not c.spark)
    with ThreadPoolExecutor(max_workers=workers + spark_workers) as pool:
        results = {o.case.name: o for o in pool.map(one, ordered)}
    return [results[c.name] for c in cases]
