"""Administrative paths through the CLI (``sql --admin``, ``vacuum --run``, ``audit compact``,
``audit anchor``), end to end: each leaves its own chained records in
``audit.admin_actions`` (started, then how it ended), and none of them reaches the audit tables."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from tracelake.jobs.cli import main
from tracelake.lineage import DeltaIOManager, LakehouseResource, MlflowResource, SparkResource, component, open_lakehouse
from tracelake.lineage.record.audit_tables import ADMIN_ACTIONS, COMPONENT_RUNS

days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-05")


@component(partitions_def=days, owner="team:tests")
def counters(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Three counters a day."""
    return pd.DataFrame({"key": [f"{context.partition_key}-{i}" for i in range(3)], "value": [1, 2, 3]})


@pytest.fixture
def tiny(home, spark) -> str:
    spark_res, mlflow = SparkResource(home=home), MlflowResource(home=home)
    lakehouse = LakehouseResource(home=home, spark=spark_res, mlflow=mlflow)
    resources = {"spark": spark_res, "mlflow": mlflow, "lakehouse": lakehouse,
                 "delta_io_manager": DeltaIOManager(lakehouse=lakehouse)}
    assert dg.materialize([counters], partition_key="2026-01-02", resources=resources).success
    return home


def _actions(home: str) -> pd.DataFrame:
    lake = open_lakehouse(home)
    lake.flush()   # read back from the Delta table, as `tracelake sql` would, not from the journal
    return lake.store.read(ADMIN_ACTIONS.name, include_pending=False)


def _ends(actions: pd.DataFrame, action: str) -> list[str]:
    """How each ``action`` ended, found from its started record (``<id>.end``), oldest first."""
    mine = actions[actions["action"] == action].set_index("action_id")
    starts = mine[mine["outcome"] == "started"].sort_index()
    return [mine.loc[f"{aid}.end", "outcome"] for aid in starts.index]


def test_sql_admin_and_vacuum_run_are_recorded_started_and_finished(tiny, capsys):
    home = tiny
    assert main(["--home", home, "sql", "ALTER TABLE counters SET TBLPROPERTIES ('tracelake.note' = 'checked')",
                 "--admin", "--reason", "label the table for the auditors"]) == 0
    assert main(["--home", home, "sql", "ALTER TABLE counters DROP COLUMN no_such_column",
                 "--admin", "--reason", "a statement Spark refuses"]) == 2
    assert main(["--home", home, "vacuum", "--run", "--reason", "quarterly clean-up"]) == 0
    assert main(["--home", home, "vacuum"]) == 0   # a dry run deletes nothing: not an administrative action
    assert main(["--home", home, "audit", "compact", "--reason", "after the import"]) == 0
    assert main(["--home", home, "audit", "anchor"]) == 0   # the reason is optional outside SQL
    capsys.readouterr()

    actions = _actions(home)
    assert len(actions) == 10, actions   # 5 actions x (started, end); the dry run recorded nothing
    sql_ends = _ends(actions, "sql")
    assert sql_ends[0] == "succeeded" and sql_ends[1].startswith("failed: "), sql_ends
    sql = actions[actions["action"] == "sql"]
    assert set(sql["reason"]) == {"label the table for the auditors", "a statement Spark refuses"}
    assert sql["statement"].str.contains("ALTER TABLE counters").all()
    assert _ends(actions, "vacuum") == ["succeeded"]
    vacuum = actions[actions["action"] == "vacuum"]
    assert set(vacuum["reason"]) == {"quarterly clean-up"}
    assert vacuum["statement"].str.contains("retaining 2555 days").all()
    assert _ends(actions, "audit compact") == _ends(actions, "audit anchor") == ["succeeded"]
    assert set(actions[actions["action"] == "audit compact"]["reason"]) == {"after the import"}
    assert actions[actions["action"] == "audit anchor"]["reason"].isna().all()
    assert actions["actor"].str.len().gt(0).all() and actions["host"].str.len().gt(0).all()


def test_sql_admin_cannot_write_an_audit_table_by_path(tiny, capsys):
    home = tiny
    lake = open_lakehouse(home)
    lake.flush()
    before = len(lake.store.read(COMPONENT_RUNS.name, include_pending=False))
    path = lake.store.path(COMPONENT_RUNS.name)
    for statement in (f"DELETE FROM delta.`{path}`", f"UPDATE delta.`{path}` SET status = 'failed'"):
        assert main(["--home", home, "sql", statement, "--admin", "--reason", "x"]) == 2
        err = capsys.readouterr().err.strip()
        assert "names a table by path" in err and len(err.splitlines()) == 1, err
    assert len(lake.store.read(COMPONENT_RUNS.name, include_pending=False)) == before > 0
    assert _actions(home).empty   # refused before anything ran, so nothing to record either
