"""A schema break on 2026-01-14: the vendor renames fare_amount to fare_usd and sends it as text.
The blocking schema test closes the gate before the commit: nothing reaches raw_trips, the batch
is kept aside, the run fails everywhere, downstream does not run, and the pipeline alert opens."""

from __future__ import annotations

from deltalake import DeltaTable

from tracelake.lineage import CHECK_RESULTS
from tracelake.monitors.alerts.manager import AlertManager

DAY = "2026-01-14"


def test_schema_break_fails_a_blocking_test_and_nothing_is_written(schema_break_scenario, record_of):
    lake = schema_break_scenario.lake
    checks = lake.store.read(CHECK_RESULTS)
    schema = checks[(checks["component"] == "raw_trips") & (checks["partition_key"] == DAY)].set_index("check_name")
    schema = schema.loc["schema"]
    assert not schema["passed"] and schema["blocking"]
    assert "missing column fare_amount" in schema["observed_text"]
    assert "unexpected column fare_usd" in schema["observed_text"]
    rec = record_of(lake, "raw_trips", DAY)
    assert rec["status"] == "failed" and rec["error_type"].endswith("BlockingCheckFailed")
    assert rec["output_version"] is None
    # Write-audit-publish: the table never saw the batch; the batch is kept, row for row, aside.
    raw = DeltaTable(lake.layout.table("raw_trips")).to_pandas(columns=["_tl_partition"])
    assert DAY not in set(raw["_tl_partition"])
    rejected = DeltaTable(lake.layout.table("raw_trips__rejected")).to_pandas()
    assert len(rejected) == rec["rejected_rows"] > 0 and '"fare_usd":"$' in rejected["row_json"].iloc[0]
    # Every other day's raw feed passed its schema.
    others = checks[(checks["component"] == "raw_trips") & (checks["check_name"] == "schema")
                    & (checks["partition_key"] != DAY)]
    assert others["passed"].all()


def test_downstream_does_not_run_and_the_pipeline_alert_opens(schema_break_scenario):
    lake = schema_break_scenario.lake
    runs = lake.store.component_runs()
    day = runs[runs["partition_key"] == DAY]
    assert set(day["component"]) >= {"raw_trips", "trip_labels"}
    assert not {"cleaned_trips", "trip_features"} & set(day["component"])
    blocked = [a for a in AlertManager(lake).alerts() if a.policy == "pipeline_blocked" and a.component == "raw_trips"]
    assert len(blocked) == 1 and blocked[0].status == "open" and "fare_usd" in blocked[0].message
