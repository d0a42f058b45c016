"""The SQL surface is read-only by default: what is refused, and why (no Spark needed to judge)."""

from __future__ import annotations

import re

import pytest

from tracelake.lineage.query.sql_guard import SqlRefused, judge

QUESTIONS = [
    "SELECT count(*) FROM trip_features VERSION AS OF 12",
    "SELECT * FROM tip_predictions TIMESTAMP AS OF '2026-01-20 06:00:00' WHERE pickup_zone = 'Airport'",
    "SELECT component, status, count(*) FROM audit.component_runs GROUP BY 1, 2",
    "SELECT * FROM tracelake_trace('tip_predictions', \"pickup_date = '2026-01-14'\")",
    "WITH a AS (SELECT trip_id FROM trip_features) SELECT count(*) FROM a",
    "SELECT 1 UNION ALL SELECT 2",
    "SHOW TABLES",
    "DESCRIBE HISTORY trip_features",
    "EXPLAIN SELECT * FROM trip_features",
]
REFUSED = [
    ("DELETE FROM audit.check_results", "DELETE is refused"),
    ("INSERT INTO trip_features SELECT * FROM trip_features", "INSERT is refused"),
    ("UPDATE tip_predictions SET predicted_tip = true", "UPDATE is refused"),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "is refused"),
    ("CREATE TABLE x AS SELECT 1", "CREATE is refused"),
    ("DROP TABLE trip_features", "DROP is refused"),
    ("ALTER TABLE trip_features SET TBLPROPERTIES ('delta.logRetentionDuration' = 'interval 1 days')", "is refused"),
    ("SET spark.databricks.delta.retentionDurationCheck.enabled=false", "SET is refused"),
    ("VACUUM trip_features RETAIN 0 HOURS", "VACUUM is refused"),
    ("OPTIMIZE trip_features", "OPTIMIZE is refused"),
    ("CACHE TABLE trip_features", "CACHE is refused"),
    ("ADD JAR /tmp/evil.jar", "ADD JAR is refused"),
    ("SELECT * FROM text.`/etc/hostname`", "outside the lakehouse"),
    ("SELECT * FROM parquet.`file:///etc`", "outside the lakehouse"),
    ("SELECT * FROM delta.`/tmp/other-lake/t`", "outside the lakehouse"),
    ("SELECT * FROM read_files('/etc')", "read_files() is not allowed"),
    ("SELECT reflect('java.lang.Runtime', 'getRuntime')", "reflect() is not allowed"),
    ("SELECT 1; DROP TABLE trip_features", "DROP is refused"),
    ("SELECT * FROM other_db.t", "unknown database"),
    ("", "empty"),
    ("SELEC * FRM", "as a SQL statement"),
]


@pytest.mark.parametrize("query", QUESTIONS)
def test_questions_are_allowed(query):
    assert all(s.kind == "question" for s in judge(query))


@pytest.mark.parametrize("query, message", REFUSED)
def test_writes_state_changes_and_outside_reads_are_refused(query, message):
    with pytest.raises(SqlRefused, match=re.escape(message)):
        judge(query)


def test_admin_statements_are_allowed_but_never_retention_or_audit_writes():
    assert [s.kind for s in judge("CREATE TABLE scratch AS SELECT 1", admin=True)] == ["admin"]
    for query in ("VACUUM trip_features RETAIN 0 HOURS",
                  "SET spark.databricks.delta.retentionDurationCheck.enabled=false",
                  "ALTER TABLE t SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = 'interval 1 days')"):
        with pytest.raises(SqlRefused, match="never changed through SQL"):
            judge(query, admin=True)
    with pytest.raises(SqlRefused, match="audit tables are written only by Tracelake"):
        judge("DELETE FROM audit.check_results", admin=True)


HOME = "/data/lakes/tracelake"
AUDIT_BY_PATH = [
    # The audit tables by path, in every writing form: the name check alone let these through.
    f"DELETE FROM delta.`{HOME}/audit/check_results`",
    f"UPDATE delta.`{HOME}/audit/check_results` SET passed = true",
    f"MERGE INTO delta.`{HOME}/audit/flags` t USING s ON t.flag_id = s.flag_id WHEN MATCHED THEN DELETE",
    f"ALTER TABLE delta.`{HOME}/audit/flags` ADD COLUMNS (x int)",
    f"DELETE FROM `{HOME}/audit/check_results`",
    f"INSERT INTO delta.`file://{HOME}/audit/component_runs` SELECT * FROM audit.component_runs",
    # ... and any other table or folder by path, which is how a name check is walked around.
    f"INSERT INTO delta.`{HOME}/tables/trip_features` SELECT * FROM trip_features",
    "INSERT INTO trip_features SELECT * FROM delta.`/tmp/other-lake/t`",
    "CREATE TABLE scratch AS SELECT * FROM text.`/etc/hostname`",
]
ADMIN_REACH = [
    (f"CREATE TABLE x USING DELTA LOCATION '{HOME}/audit/check_results'", "points at files by path"),
    (f"CREATE TABLE x (a int) USING delta OPTIONS (path '{HOME}/audit/check_results')", "points at files by path"),
    (f"ALTER TABLE trip_features SET LOCATION '{HOME}/audit/check_results'", "points at files by path"),
    (f"INSERT OVERWRITE DIRECTORY '{HOME}/audit/check_results' SELECT 1", "points at files by path"),
    ("INSERT OVERWRITE LOCAL DIRECTORY '/tmp/out' SELECT 1", "points at files by path"),
    ("USE audit; DELETE FROM check_results", "USE is refused even with --admin"),
    ("DELETE FROM run_inputs", "audit tables are written only by Tracelake's journal"),
    ("MSCK REPAIR TABLE audit.flags", "naming a path or the audit database"),
    ("ADD JAR /tmp/evil.jar", "naming a path or the audit database"),
]


@pytest.mark.parametrize("query", AUDIT_BY_PATH)
def test_admin_cannot_write_or_read_tables_by_path(query):
    with pytest.raises(SqlRefused, match="names a table by path"):
        judge(query, admin=True, home=HOME)


@pytest.mark.parametrize("query, message", ADMIN_REACH)
def test_admin_cannot_reach_the_audit_tables_under_another_name(query, message):
    with pytest.raises(SqlRefused, match=re.escape(message)):
        judge(query, admin=True, home=HOME)


def test_admin_statements_never_spell_the_lakehouse_folder():
    # Independent of how the parser reads the statement: the root, as a path, URI or %-encoded.
    for literal in (f"{HOME}/audit/x", f"file://{HOME}/audit/x", HOME.replace("/lakes/", "/%6Cakes/")):
        with pytest.raises(SqlRefused, match="may not name the lakehouse's files"):
            judge(f"UPDATE trip_features SET note = '{literal}'", admin=True, home=HOME)


def test_admin_repairs_of_data_tables_by_name_are_still_allowed():
    for query in ("DELETE FROM tip_predictions WHERE pickup_zone = 'Airport'",
                  "ALTER TABLE trip_features ADD COLUMNS (note string)",
                  "UPDATE cleaned_trips SET payment_type = 'card' WHERE payment_type = 'crd'"):
        assert [s.kind for s in judge(query, admin=True, home=HOME)] == ["admin"]
