"""Every view of the record says the same thing: the audit store, the CLI in a fresh process,
Dagster's event log. Run on faulted scenarios, where the statuses are the interesting part."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deltalake import DeltaTable


def _chained_tables_on_disk(home: str) -> dict[str, int]:
    """Every chained table the lakehouse holds, and its record count, read without Tracelake's
    own listing: Delta folders under audit/ plus the journal's unflushed tail (raw SQLite)."""
    import sqlite3

    counts: dict[str, int] = {}
    for folder in sorted((Path(home) / "audit").iterdir()):
        if (folder / "_delta_log").is_dir():
            table = DeltaTable(str(folder)).to_pyarrow_table(columns=["journal_id", "chain_seq"])
            counts[folder.name] = len({(j, s) for j, s in zip(table.column(0).to_pylist(), table.column(1).to_pylist(),
                                                               strict=True)})
    con = sqlite3.connect(Path(home) / "_journal" / "journal.sqlite")
    for tbl, n in con.execute("SELECT tbl, count(*) FROM entries GROUP BY tbl"):
        counts[tbl] = counts.get(tbl, 0) + n  # the flushed part is trimmed from the journal
    return counts


def test_the_cli_verifies_every_chained_table_of_the_lakehouse_in_a_fresh_process(concept_drift_scenario):
    # the recall drop opens an alert and a metric anomaly: every kind of chained table is there
    home = concept_drift_scenario.home
    on_disk = _chained_tables_on_disk(home)
    assert {"component_runs", "check_results", "metrics", "alerts", "anomalies", "sla_evaluations",
            "profile_specs"} <= set(on_disk)
    out = subprocess.run([sys.executable, "-m", "tracelake.jobs.cli", "--home", home, "audit", "verify", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["tables"] == on_disk
    assert report["records"] == sum(on_disk.values())


# status -> (Dagster step outcome, materialised in that run?, MLflow run status); docs/recording.md
EXPECTED = {"succeeded": ("success", True, "FINISHED"), "failed": ("failure", False, "FAILED"),
            "skipped": ("success", False, "KILLED")}


def _step_outcomes(instance, dagster_run_id: str) -> tuple[dict[str, str], set[tuple[str, str | None]]]:
    """Per step key: success / failure / skipped, from the run's event log; and the
    (asset, partition) pairs the run materialised."""
    import dagster as dg

    outcomes, materialised = {}, set()
    kinds = {dg.DagsterEventType.STEP_SUCCESS: "success", dg.DagsterEventType.STEP_FAILURE: "failure",
             dg.DagsterEventType.STEP_SKIPPED: "skipped"}
    for entry in instance.all_logs(dagster_run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type in kinds:
            outcomes[event.step_key] = kinds[event.event_type]
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.event_specific_data.materialization
            materialised.add((mat.asset_key.to_user_string(), mat.partition))
    return outcomes, materialised


def _statuses_agree(scenario, day: str) -> list[tuple[str, str, tuple, tuple]]:
    from mlflow import MlflowClient

    lake = scenario.lake
    lake.flush()
    client = MlflowClient(tracking_uri=lake.mlflow.tracking_uri)
    runs = lake.store.component_runs()
    seen = []
    for rec in runs[runs["partition_key"] == day].to_dict("records"):
        outcomes, materialised = _step_outcomes(scenario.instance, rec["dagster_run_id"])
        step = next(k for k in outcomes if k == rec["component"] or k.endswith(f"__{rec['component']}"))
        mlflow = client.get_run(rec["mlflow_run_id"])
        observed = (outcomes[step], (rec["component"], day) in materialised, mlflow.info.status)
        assert observed == EXPECTED[rec["status"]], (rec["component"], rec["status"], observed)
        assert mlflow.data.tags.get("tracelake.status") == rec["status"]
        seen.append((rec["component"], rec["status"], observed, EXPECTED[rec["status"]]))
    return seen


def test_a_blocked_source_and_its_downstream_agree_in_audit_dagster_and_mlflow(schema_break_scenario):
    seen = _statuses_agree(schema_break_scenario, "2026-01-14")
    statuses = {c: s for c, s, _, _ in seen}
    assert statuses["raw_trips"] == "failed"          # the blocking schema test closed the gate
    assert {"failed"} <= set(statuses.values()) and len(seen) >= 2


def test_a_missing_feed_and_its_downstream_agree_in_audit_dagster_and_mlflow(missing_feed_scenario):
    seen = _statuses_agree(missing_feed_scenario, "2026-01-13")
    statuses = {c: s for c, s, _, _ in seen}
    assert statuses["raw_trips"] == "failed" and statuses["tip_predictions"] == "skipped"
