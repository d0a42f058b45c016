"""Every view of the record says the same thing: the audit store, the CLI in a fresh process,
Dagster's event log. Run on faulted scenarios, where the statuses are the interesting part."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deltalake import DeltaTable

from tracelake.lineage import CHECK_RESULTS


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


def _checks_agree(scenario) -> int:
    """Every run's declared tests, as Dagster's asset check evaluations of that run and as the
    audit store's check_results: the same names, verdicts and severities. Returns how many."""
    import dagster as dg

    lake = scenario.lake
    checks = lake.store.read(CHECK_RESULTS)
    audit = {(r["run_id"], r["check_name"], bool(r["passed"]), r["severity"]) for r in checks.to_dict("records")}
    dagster = set()
    for rec in lake.store.component_runs().to_dict("records"):
        for entry in scenario.instance.all_logs(rec["dagster_run_id"],
                                                of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            run_id = evaluation.metadata.get("tracelake_run_id")
            if run_id is not None and run_id.value == rec["run_id"]:   # SLA checks of the monitoring job have none
                assert evaluation.asset_key == dg.AssetKey(rec["component"])
                dagster.add((rec["run_id"], evaluation.check_name, bool(evaluation.passed),
                             evaluation.severity.value.lower()))
    assert dagster == audit, (sorted(dagster - audit)[:5], sorted(audit - dagster)[:5])
    return len(audit)


# audit status -> Dagster's status of the run's partition (a skipped run materialised nothing)
PARTITION_STATUS = {"succeeded": "MATERIALIZED", "failed": "FAILED", "skipped": None}


def _partitions_agree(scenario) -> dict[tuple[str, str], str | None]:
    """Dagster's status of every partition of the pipeline's assets on the scenario's days, against
    the audit records: a recorded run's partition has its status; a partition with no record is
    failed only where an upstream asset's run failed that day (Dagster never started it)."""
    import dagster as dg

    from tracelake.assets import PIPELINE_ASSETS

    runs = scenario.lake.store.component_runs()
    recorded = {(r["component"], r["partition_key"]): r["status"] for r in runs.to_dict("records")}
    failed = {k for k, status in recorded.items() if status == "failed"}
    days = sorted({day for _, day in recorded})
    by_key = {a.key: a for a in PIPELINE_ASSETS}
    seen: dict[tuple[str, str], str | None] = {}
    for asset in PIPELINE_ASSETS:
        name = asset.key.to_user_string()
        keys = [d for d in days if asset.partitions_def.has_partition_key(d)]
        statuses = scenario.instance.get_status_by_partition(asset.key, keys, asset.partitions_def) or {}
        for day in keys:
            status = statuses.get(day)
            seen[(name, day)] = None if status is None else status.value
            if (name, day) in recorded:
                assert seen[(name, day)] == PARTITION_STATUS[recorded[(name, day)]], (name, day, recorded[(name, day)])
            elif status == dg.AssetPartitionStatus.FAILED:
                upstream = {k.to_user_string() for k in _upstream(asset.key, by_key)}
                assert any((u, day) in failed for u in upstream), (name, day, "failed in Dagster, no record")
    return seen


def _upstream(key, by_key) -> set:
    found, todo = set(), [key]
    while todo:
        for dep in by_key[todo.pop()].dependency_keys:
            if dep in by_key and dep not in found:
                found.add(dep)
                todo.append(dep)
    return found


def test_a_blocked_source_and_its_downstream_agree_in_audit_dagster_and_mlflow(schema_break_scenario):
    seen = _statuses_agree(schema_break_scenario, "2026-01-14")
    statuses = {c: s for c, s, _, _ in seen}
    assert statuses["raw_trips"] == "failed"          # the blocking schema test closed the gate
    assert {"failed"} <= set(statuses.values()) and len(seen) >= 2
    assert _checks_agree(schema_break_scenario) > 100
    failed_schema = schema_break_scenario.lake.store.read(CHECK_RESULTS).query(
        "component == 'raw_trips' and partition_key == '2026-01-14' and check_name == 'schema'")
    assert not failed_schema["passed"].astype(bool).any()   # compared above with Dagster's red check
    partitions = _partitions_agree(schema_break_scenario)
    assert partitions[("raw_trips", "2026-01-14")] == "FAILED"
    assert partitions[("cleaned_trips", "2026-01-14")] == "FAILED"   # never ran: downstream of the gate


def test_a_missing_feed_and_its_downstream_agree_in_audit_dagster_and_mlflow(missing_feed_scenario):
    seen = _statuses_agree(missing_feed_scenario, "2026-01-13")
    statuses = {c: s for c, s, _, _ in seen}
    assert statuses["raw_trips"] == "failed" and statuses["tip_predictions"] == "skipped"
    assert _checks_agree(missing_feed_scenario) > 100
    partitions = _partitions_agree(missing_feed_scenario)
    assert partitions[("raw_trips", "2026-01-13")] == "FAILED"
    assert partitions[("tip_predictions", "2026-01-13")] is None   # skipped: neither materialised nor failed
