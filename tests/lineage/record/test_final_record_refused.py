"""The journal refuses a run's succeeded record (a full disk): the run must not read as a success
anywhere. Its commit is rolled back and it is recorded failed - once, naming the version that had
landed - and Dagster is told it failed.

The first tests drive ``Materialisation.run``'s own control flow with each step done by delta-rs
(no Spark); the last one is a real ``dg.materialize``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
from concurrent.futures import Future
from types import SimpleNamespace

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from tracelake.lineage import (
    RUN_ID_COLUMN,
    DeltaIOManager,
    LakehouseResource,
    MlflowResource,
    SparkResource,
    component,
    open_lakehouse,
)
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record import materialisation as materialisation_module
from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
from tracelake.lineage.record.materialisation import Materialisation, _Batch
from tracelake.lineage.record.recorder import Recorder
from tracelake.lineage.record.run import ComponentRun, OutputRecord

TABLE = "numbers"
_REFUSED = re.compile(r"the run's final record could not be written: (\[Errno 28\] )?No space left on device")


class _NoMlflow:
    """MLflow as far as the recorder needs it, without a store: which runs ended, how."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, str]] = []

    def start_run(self, component: str, run_name: str, tags: dict) -> Future:
        ids: Future = Future()
        ids.set_result(("0", f"mlflow-{tags['tracelake.run_id']}"))
        return ids

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"http://mlflow.invalid/#/experiments/{experiment_id}/runs/{run_id}"

    def finish_run(self, run_id: str, *, status: str, **_: object) -> None:
        self.finished.append((run_id, status))


def _no_spark():
    raise AssertionError("these runs never need Spark")


def _refuse(monkeypatch, journal, statuses: set[str], times: int) -> list[dict]:
    """The journal refuses the first ``times`` component_runs records whose status is in
    ``statuses`` as a full disk does (nothing written), then takes records again."""
    real = journal.append
    refused: list[dict] = []

    def append(table, key, row, *, close_run=None):
        if table.name == COMPONENT_RUNS.name and row.get("status") in statuses and len(refused) < times:
            refused.append(dict(row))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(table, key, row, close_run=close_run)

    monkeypatch.setattr(journal, "append", append)
    return refused


def _commit(lake, run: ComponentRun, keys: list[str]) -> OutputRecord:
    """One delta-rs commit naming the run, as its output's would, found in the log."""
    path = lake.layout.table(TABLE)
    rows = pa.table({"key": keys, RUN_ID_COLUMN: [run.run_id] * len(keys)})
    write_deltalake(path, rows, mode="append", commit_properties=CommitProperties(
        custom_metadata={"userMetadata": json.dumps({"tracelake_run_id": run.run_id, "component": TABLE})}))
    commit = delta_meta.find_commit(path, run.run_id)
    assert commit is not None
    return OutputRecord(table=TABLE, path=path, version=commit.version, rows=commit.rows_added,
                        files=len(commit.adds), bytes=commit.bytes_added, partitions=None, schema_hash="",
                        schema_json="", content_digest="", write_mode="append")


class _DeltaRsMaterialisation(Materialisation):
    """``Materialisation.run`` itself; only its steps are stand-ins: no inputs, no tests, and the
    commit is one delta-rs append of three rows."""

    def __init__(self, lake, recorder: Recorder):
        self.lake, self.recorder, self.partition_keys = lake, recorder, None
        self.spec = SimpleNamespace(name=TABLE, table=TABLE, write_mode="append")
        self.context = SimpleNamespace(log=logging.getLogger("test_final_record_refused"))
        self.runs: list[ComponentRun] = []

    def open_record(self) -> ComponentRun:
        run = self.recorder.begin(component=TABLE, asset_key=TABLE, output_table=TABLE, write_mode="append")
        self.runs.append(run)
        return run

    def read_inputs(self, run):
        return {}

    def call_function(self, run, inputs):
        return None

    def prepare_batch(self, run, result):
        return _Batch(frame=None, produced=[])

    def evaluate_checks(self, run, batch):
        return []

    def commit(self, run, batch):
        run.output = _commit(self.lake, run, ["a", "b", "c"])


def _setup(home):
    lake = open_lakehouse(home)
    mlflow = _NoMlflow()
    recorder = Recorder(layout=lake.layout, store=lake.store, mlflow=mlflow, spark_provider=_no_spark, listeners=[])
    # A first run succeeds: the table has rows of a succeeded run, which must stay.
    good = recorder.begin(component=TABLE, asset_key=TABLE, output_table=TABLE, write_mode="append")
    good.output = _commit(lake, good, ["x", "y"])
    recorder.succeed(good)
    return lake, recorder, mlflow, good


def _records(lake, run_id: str) -> list[dict]:
    """Every component_runs record of the run (the journal's tail and Delta: each once)."""
    runs = lake.store.component_runs(include_open=False)
    return [r for r in runs.to_dict("records") if r["run_id"] == run_id]


def _visible(lake) -> dict[str, int]:
    ids = DeltaTable(lake.layout.table(TABLE)).to_pyarrow_table(columns=[RUN_ID_COLUMN]).column(RUN_ID_COLUMN)
    return {run_id: ids.to_pylist().count(run_id) for run_id in set(ids.to_pylist())}


def test_a_refused_succeeded_record_fails_the_run_rolls_it_back_and_records_it_once(home, monkeypatch):
    lake, recorder, mlflow, good = _setup(home)
    refused = _refuse(monkeypatch, lake.journal, {"succeeded"}, times=1)
    monkeypatch.setattr(materialisation_module, "materialize_result", lambda *_: "materialised")
    materialisation = _DeltaRsMaterialisation(lake, recorder)

    # The refusal reaches the caller: nothing is materialised (in Dagster: the step fails).
    events: list = []
    with pytest.raises(OSError, match="No space left on device"):
        events.extend(materialisation.run())
    assert events == []
    (run,) = materialisation.runs
    assert [r["status"] for r in refused] == ["succeeded"]

    # Recorded failed, once, with the version that had landed and the rollback that took it back.
    (rec,) = _records(lake, run.run_id)
    assert rec["status"] == "failed" and run.status == "failed"
    assert rec["output_version"] == run.output.version and rec["rolled_back_version"] is not None
    assert rec["error_type"] == "builtins.OSError"
    assert _REFUSED.match(rec["error_message"]), rec["error_message"]
    assert f"{TABLE}@v{run.output.version} had landed" in rec["error_message"]
    assert f"rolled back at v{rec['rolled_back_version']}" in rec["error_message"]
    # Nothing else about the run waits to be written; its MLflow run ends FAILED, once.
    assert recorder.unwritten == [] and lake.journal.open_runs() == []
    assert recorder.retry_unwritten() == 0 and len(_records(lake, run.run_id)) == 1
    assert [s for r, s in mlflow.finished if r == f"mlflow-{run.run_id}"] == ["failed"]
    # Only the succeeded run's rows are left, and the record and the tables agree.
    assert _visible(lake) == {good.run_id: 2}
    report = verify_lakehouse(lake)
    assert report.ok, report.problems


def test_when_the_failed_record_is_refused_too_it_is_written_once_when_there_is_room(home, monkeypatch):
    lake, recorder, _, good = _setup(home)
    refused = _refuse(monkeypatch, lake.journal, {"succeeded", "failed"}, times=3)
    materialisation = _DeltaRsMaterialisation(lake, recorder)
    with pytest.raises(OSError):
        list(materialisation.run())
    (run,) = materialisation.runs
    # Refused: the succeeded record, the failed one, the failed one naming that refusal.
    assert [r["status"] for r in refused] == ["succeeded", "failed", "failed"]
    # Meanwhile the run is open (reconciliation would make it abandoned), one record in memory.
    assert run.status == "started" and [o.run_id for o in lake.journal.open_runs()] == [run.run_id]
    assert [rid for rid, _ in recorder.unwritten] == [run.run_id] and _records(lake, run.run_id) == []
    assert _visible(lake) == {good.run_id: 2}

    assert recorder.retry_unwritten() == 1 and recorder.retry_unwritten() == 0
    (rec,) = _records(lake, run.run_id)
    assert rec["status"] == "failed" and rec["output_version"] == run.output.version
    assert rec["rolled_back_version"] is not None and "rolled back at" in rec["error_message"]
    assert _REFUSED.match(rec["error_message"]), rec["error_message"]
    assert lake.journal.open_runs() == []
    report = verify_lakehouse(lake)
    assert report.ok, report.problems


@component
def refused_numbers():
    return pd.DataFrame({"key": ["a", "b", "c"]})


def test_dagster_reports_a_failure_when_the_succeeded_record_is_refused(home, spark, monkeypatch):
    spark_res, mlflow_res = SparkResource(home=home), MlflowResource(home=home)
    lakehouse = LakehouseResource(home=home, spark=spark_res, mlflow=mlflow_res)
    lake = lakehouse.open()  # the lakehouse (and journal) the run itself opens
    refused = _refuse(monkeypatch, lake.journal, {"succeeded"}, times=1)
    result = dg.materialize([refused_numbers], raise_on_error=False, resources={
        "spark": spark_res, "mlflow": mlflow_res, "lakehouse": lakehouse,
        "delta_io_manager": DeltaIOManager(lakehouse=lakehouse)})

    assert not result.success and result.asset_materializations_for_node("refused_numbers") == []
    assert len(refused) == 1
    (rec,) = lake.store.component_runs(include_open=False).to_dict("records")
    assert rec["status"] == "failed" and rec["output_version"] is not None
    assert rec["rolled_back_version"] is not None
    path = lake.layout.table("refused_numbers")
    assert DeltaTable(path).to_pyarrow_table().num_rows == 0  # the rows are rolled back
    assert lake.journal.open_runs() == []
    report = verify_lakehouse(lake)
    assert report.ok, report.problems
