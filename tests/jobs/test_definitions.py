"""The code location `dagster dev` loads: everything is there and wired by role."""

from __future__ import annotations

import dagster as dg

from tracelake.lineage.record.component import component_spec


def test_definitions_load_with_every_asset_job_schedule_and_resource():
    from tracelake.jobs.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_trips", "cleaned_trips", "trip_features", "trip_labels", "training_set", "tip_model",
                    "tip_predictions", "model_evaluation", "data_profiles", "data_drift",
                    "period_compliance_report", "model_compliance_report"}
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"daily_etl", "weekly_training", "daily_inference", "daily_evaluation", "daily_drift", "monitoring",
            "audit_maintenance_job", "retention_verification_job"} <= jobs
    assert {"alert_channels"} <= set(defs.resources)
    schedules = {s.name for s in defs.schedules}
    assert len(schedules) == 9
    assert {"model_compliance_job", "monthly_compliance_job"} <= jobs
    assert {s.name for s in defs.sensors} == {"new_model_version_sensor"}
    assert {"spark", "lakehouse", "mlflow", "delta_io_manager", "simulator"} <= set(defs.resources)
    from tracelake.assets import PIPELINE_ASSETS
    from tracelake.lineage.record.provenance import source_hash

    for asset in PIPELINE_ASSETS:
        spec = component_spec(asset)
        # Dagster's code version is the hash of the component's own source, so staleness follows edits.
        assert graph.get(spec.key).code_version == source_hash(spec.fn)[:16]
    # Cross-cadence edges the lineage queries rely on.
    assert dg.AssetKey("tip_model") in graph.get(dg.AssetKey("tip_predictions")).parent_keys
    assert dg.AssetKey("trip_labels") in graph.get(dg.AssetKey("training_set")).parent_keys


def test_workspace_yaml_points_at_the_definitions_module():
    from pathlib import Path

    import yaml

    workspace = yaml.safe_load((Path(__file__).parents[2] / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    assert module == "tracelake.jobs.definitions"
