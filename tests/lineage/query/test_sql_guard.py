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
