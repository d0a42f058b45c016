"""The embedded MLflow store is a write-ahead-logged SQLite file: a reader never blocks logging."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from tracelake.lineage.record.mlflow_link import MlflowLink, _write_ahead_log


def test_a_reader_holding_the_store_open_does_not_block_logging(tmp_path):
    db = tmp_path / "mlflow.db"
    link = MlflowLink(f"sqlite:///{db}", "http://127.0.0.1:5000", str(tmp_path / "artifacts"), "t")
    with closing(sqlite3.connect(db)) as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # An MLflow UI in the middle of a read: with a rollback journal the writer below would
        # wait for it and fail with "database is locked".
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        _, run_id = link.start_run("etl", "etl@2026-01-01", {"tracelake.run_id": "r1"}).result(timeout=60)
        link.finish_run(run_id, status="succeeded", params={"a": "1"}, metrics={"rows": 3.0}, tags={},
                        datasets=[]).result(timeout=60)
        assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == 0   # its snapshot holds
        reader.execute("COMMIT")
        assert reader.execute("SELECT status FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()[0] == "FINISHED"



def test_a_store_busy_at_start_keeps_its_mode_until_the_next_start(tmp_path, caplog):
    db = tmp_path / "mlflow.db"
    with closing(sqlite3.connect(db)) as reader:
        reader.execute("CREATE TABLE held (x)")
        reader.commit()
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM held").fetchall()   # the switch cannot take the file now
        with caplog.at_level("INFO", logger="tracelake.mlflow"):
            _write_ahead_log(db, busy_timeout_s=0.1)
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        reader.execute("COMMIT")
    assert "write-ahead log from the next start" in caplog.text
    _write_ahead_log(db)
    with closing(sqlite3.connect(db)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
