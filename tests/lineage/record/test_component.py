"""The recorder end to end on a toy pipeline: real Dagster, Spark + Delta, MLflow (SQLite)."""

from __future__ import annotations

import json
from typing import ClassVar

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable
from mlflow import MlflowClient

from tracelake.lineage import (
    RUN_ID_COLUMN,
    ComponentRun,
    DeltaIOManager,
    LakehouseResource,
    MlflowResource,
    SparkResource,
    component,
    component_spec,
    open_lakehouse,
)
from tracelake.lineage.record import delta_meta as delta_log

days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-10")


class NumbersConfig(dg.Config):
    scale: int = 1
    db_password: str = "hunter2-do-not-log"


class VendorApiResource(dg.ConfigurableResource):
    tracelake_recorded_fields: ClassVar[tuple[str, ...]] = ("endpoint",)  # api_token is never recorded
    endpoint: str = "https://vendor.example"
    api_token: str = "tok-SECRET-0123456789"


@component(partitions_def=days, owner="team:tests")
def numbers(context: dg.AssetExecutionContext, config: NumbersConfig, vendor: VendorApiResource) -> pd.DataFrame:
    """Ten numbers per day."""
    base = int(context.partition_key[-2:]) * 100
    return pd.DataFrame({"key": [f"{context.partition_key}-{i}" for i in range(10)],
                         "value": [(base + i) * config.scale for i in range(10)]})


@component(partitions_def=days, lineage_keys={"numbers": "key"})
def doubled(numbers, run: ComponentRun):
    run.log_metric("rows_in", numbers.count())
    return numbers.selectExpr("key", "value * 2 AS value")


@component
def totals(doubled):
    return doubled.groupBy().sum("value").withColumnRenamed("sum(value)", "total")


@component(partitions_def=days)
def broken(numbers, vendor: VendorApiResource):
    raise RuntimeError(f"upstream refused the request (token {vendor.api_token})")


@component(partitions_def=days, optional_output=True)
def sometimes(context: dg.AssetExecutionContext):
    return None if context.partition_key.endswith("2") else pd.DataFrame({"x": [1]})


def resources(home: str) -> dict:
    spark = SparkResource(home=home)
    mlflow = MlflowResource(home=home)
    lakehouse = LakehouseResource(home=home, spark=spark, mlflow=mlflow)
    return {"spark": spark, "mlflow": mlflow, "lakehouse": lakehouse,
            "delta_io_manager": DeltaIOManager(lakehouse=lakehouse), "vendor": VendorApiResource()}


def materialize(home, assets, partition_key=None, selection=None, raise_on_error=True, run_config=None):
    return dg.materialize(assets, partition_key=partition_key, resources=resources(home), selection=selection,
                          raise_on_error=raise_on_error, run_config=run_config)


def records(home):
    return open_lakehouse(home).store.component_runs().set_index("run_id", drop=False)


def test_a_materialisation_records_everything(home, spark):
    result = materialize(home, [numbers, doubled], partition_key="2026-01-02",
                         run_config={"ops": {"numbers": {"config": {"scale": 3}}}})
    assert result.success
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    md = mats["doubled"].materialization.metadata
    run_id = md["tracelake_run_id"].value
    rec = records(home).loc[run_id].to_dict()

    # Identity, timing, status
    assert rec["component"] == "doubled" and rec["partition_key"] == "2026-01-02"
    assert rec["dagster_run_id"] == result.run_id and rec["status"] == "succeeded"
    assert rec["ended_at"] > rec["started_at"] and rec["duration_ms"] > 0
    # Code: version, source hash, git (the tests run inside the repository), libraries
    assert rec["code_version"] == rec["source_hash"][:16] and len(rec["source_hash"]) == 64
    assert len(rec["git_commit"]) == 40 and rec["git_dirty"] in (True, False)
    assert {"pyspark", "delta-spark", "dagster", "mlflow"} <= set(rec["library_versions"])
    # Inputs at the exact version read; output version, rows, schema hash; metrics; lineage keys
    upstream = records(home).loc[mats["numbers"].materialization.metadata["tracelake_run_id"].value]
    (inp,) = rec["inputs"]
    assert inp["name"] == "numbers" and inp["version"] == upstream["output_version"] == 0
    assert list(inp["partitions"]) == ["2026-01-02"]
    assert rec["output_version"] == md["delta_version"].value and rec["output_rows"] == 10
    assert rec["metrics"] == {"rows_in": 10.0}
    assert json.loads(rec["lineage_keys_json"]) == {"numbers": ["key"]}
    assert len(rec["output_schema_hash"]) == 64 and len(rec["content_digest"]) == 64
    # Dagster metadata and data version
    assert md["mlflow_run"].value == rec["mlflow_run_url"]
    assert mats["doubled"].materialization.tags["dagster/data_version"] == f"v{rec['output_version']}"
    assert md["dagster/row_count"].value == 10
    assert [c.name for c in md["dagster/column_schema"].schema.columns] == ["key", "value", RUN_ID_COLUMN, "_tl_partition"]
    # Every row carries the run id; the commit names the run.
    path = rec["output_path"]
    rows = DeltaTable(path, version=rec["output_version"]).to_pandas()
    assert set(rows[RUN_ID_COLUMN]) == {run_id}
    assert delta_log.read_commit(path, rec["output_version"]).user_metadata["tracelake_run_id"] == run_id
    # Config is recorded, secrets are not.
    config = json.loads(rec["config_json"])
    assert config["config"]["scale"] == 3 if "config" in config else True


def test_mlflow_run_links_back_with_params_metrics_and_datasets(home, spark):
    result = materialize(home, [numbers, doubled], partition_key="2026-01-03")
    lake = open_lakehouse(home)
    lake.flush()  # drains the MLflow queue
    run_id = next(m.materialization.metadata["tracelake_run_id"].value for m in result.get_asset_materialization_events()
              if m.asset_key.to_user_string() == "doubled")
    rec = records(home).loc[run_id]
    client = MlflowClient(tracking_uri=lake.mlflow.tracking_uri)
    mrun = client.get_run(rec["mlflow_run_id"])
    assert mrun.info.status == "FINISHED"
    assert mrun.data.tags["tracelake.run_id"] == run_id
    assert mrun.data.tags["dagster.run_id"] == result.run_id
    assert mrun.data.tags["dagster.partition_key"] == "2026-01-03"
    assert mrun.data.tags["mlflow.source.git.commit"] == rec["git_commit"]
    assert mrun.data.metrics["rows_in"] == 10
    datasets = {}
    for d in mrun.inputs.dataset_inputs:
        tags = {t.key: t.value for t in d.tags}
        datasets[(d.dataset.name, tags["mlflow.data.context"])] = (json.loads(d.dataset.source), tags)
    # The version is in the dataset's name (what MLflow's UI lists), in its Delta source and a tag.
    inp = rec["inputs"][0]
    source, tags = datasets[(f"numbers@v{inp['version']}", "input")]
    assert source == {"path": inp["path"], "delta_table_version": inp["version"]} and tags["tracelake.table"] == "numbers"
    source, tags = datasets[(f"doubled@v{rec['output_version']}", "output")]
    assert source["path"] == rec["output_path"] and int(tags["tracelake.delta_version"]) == rec["output_version"]
    # ... and what the run read is in its Parameters.
    assert mrun.data.params["input.numbers.version"] == str(inp["version"])
    assert mrun.data.params["input.numbers.partitions"] == "2026-01-03..2026-01-03 (1)"
    assert lake.mlflow.find_run(run_id)[1] == rec["mlflow_run_id"]


def test_inputs_are_recorded_at_the_version_actually_read(home, spark):
    materialize(home, [numbers], partition_key="2026-01-04")
    first = materialize(home, [numbers, doubled, totals], selection=[doubled], partition_key="2026-01-04")
    # The upstream gets a new version (a re-run with different data) between two downstream runs.
    materialize(home, [numbers], partition_key="2026-01-04", run_config={"ops": {"numbers": {"config": {"scale": 5}}}})
    second = materialize(home, [numbers, doubled], selection=[doubled], partition_key="2026-01-04")
    recs = records(home)
    by_dagster = {r["dagster_run_id"]: r for r in recs.to_dict("records") if r["component"] == "doubled"}
    v1 = by_dagster[first.run_id]["inputs"][0]["version"]
    v2 = by_dagster[second.run_id]["inputs"][0]["version"]
    assert (v1, v2) == (0, 1)
    lake = open_lakehouse(home)
    out1 = DeltaTable(lake.layout.table("doubled"), version=by_dagster[first.run_id]["output_version"]).to_pandas()
    out2 = DeltaTable(lake.layout.table("doubled"), version=by_dagster[second.run_id]["output_version"]).to_pandas()
    assert out1["value"].sum() * 5 == out2["value"].sum()  # each read exactly its pinned upstream version


def test_a_commit_landing_after_the_pin_is_not_read(home, spark):
    """The version recorded is the version read, even if the table moves while the run works."""
    materialize(home, [numbers], partition_key="2026-01-05")
    lake = open_lakehouse(home)

    @component(name="racer", partitions_def=days, lineage_keys={"numbers": "key"})
    def racer(numbers):
        # Another writer commits to the input after we pinned it but before we use it.
        extra = spark.createDataFrame(pd.DataFrame({"key": ["late"], "value": [1], "_tl_run_id": ["other"],
                                                    "_tl_partition": ["2026-01-05"]}))
        extra.write.format("delta").mode("append").save(lake.layout.table("numbers"))
        return numbers

    result = materialize(home, [numbers, racer], selection=[racer], partition_key="2026-01-05")
    rec = records(home).query("component == 'racer'").iloc[0]
    assert rec["inputs"][0]["version"] == 0
    assert delta_log.latest_version(lake.layout.table("numbers")) == 1
    assert rec["output_rows"] == 10 and result.success


def test_a_failing_component_is_recorded_as_failed_and_still_fails_in_dagster(home, spark):
    materialize(home, [numbers], partition_key="2026-01-06")
    result = materialize(home, [numbers, broken], selection=[broken], partition_key="2026-01-06",
                         raise_on_error=False)
    assert not result.success
    recs = records(home).query("component == 'broken'")
    assert list(recs["status"]) == ["failed"]
    rec = recs.iloc[0]
    assert rec["error_type"] == "builtins.RuntimeError" and "upstream refused" in rec["error_message"]
    assert "tok-SECRET-0123456789" not in rec["error_message"] + rec["error_trace"]
    assert rec["output_version"] is None and not lake_table_exists(home, "broken")
    lake = open_lakehouse(home)
    lake.flush()
    assert MlflowClient(tracking_uri=lake.mlflow.tracking_uri).get_run(rec["mlflow_run_id"]).info.status == "FAILED"


def lake_table_exists(home, name):
    return delta_log.latest_version(open_lakehouse(home).layout.table(name)) is not None


def test_no_output_is_recorded_as_skipped(home, spark):
    result = materialize(home, [sometimes], partition_key="2026-01-02")
    assert result.success and not result.get_asset_materialization_events()
    rec = records(home).iloc[0]
    assert rec["status"] == "skipped" and rec["output_version"] is None


def test_secrets_never_reach_the_audit_store_or_mlflow(home, spark, _shared_mlflow_store):
    materialize(home, [numbers], partition_key="2026-01-07")
    materialize(home, [numbers, broken], selection=[broken], partition_key="2026-01-07", raise_on_error=False)
    lake = open_lakehouse(home)
    lake.flush()
    secrets = [b"hunter2-do-not-log", b"tok-SECRET-0123456789"]
    haystacks = [p for p in __import__("pathlib").Path(home).rglob("*") if p.is_file()]
    haystacks.append(__import__("pathlib").Path(_shared_mlflow_store[len("sqlite:///"):]))
    for path in haystacks:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"{secret!r} leaked into {path}"
    rec = records(home).query("component == 'numbers'").iloc[0]
    config = json.loads(rec["config_json"])
    assert config["config"]["db_password"] == "***"
    assert config["resources"]["vendor"] == {"type": "VendorApiResource", "endpoint": "https://vendor.example",
                                             "api_token": "<not recorded>"}
    params = MlflowClient(tracking_uri=lake.mlflow.tracking_uri).get_run(rec["mlflow_run_id"]).data.params
    assert params["config.db_password"] == "***" and params["resources.vendor.api_token"] == "<not recorded>"
    assert params["resources.vendor.endpoint"] == "https://vendor.example"


def test_every_recorded_version_is_readable_by_an_independent_delta_reader(home, spark):
    for day in ("2026-01-02", "2026-01-03"):
        materialize(home, [numbers, doubled], partition_key=day)
    materialize(home, [numbers, doubled, totals], selection=[totals])
    recs = records(home)
    assert len(recs) == 5
    for rec in recs.to_dict("records"):
        table = DeltaTable(rec["output_path"], version=rec["output_version"]).to_pandas()
        mine = table[table[RUN_ID_COLUMN] == rec["run_id"]]
        assert len(mine) == rec["output_rows"] > 0
    assert totals_value(home) == sum((200 + i) * 2 + (300 + i) * 2 for i in range(10))


def totals_value(home):
    return int(DeltaTable(open_lakehouse(home).layout.table("totals")).to_pandas()["total"].iloc[0])


def test_direct_invocation_with_build_asset_context(home, spark):
    @component(name="constant")
    def constant():
        return pd.DataFrame({"x": [1, 2, 3]})

    res = resources(home)
    with dg.build_asset_context(resources={"lakehouse": res["lakehouse"]}) as context:
        events = list(constant(context))
    (output,) = events
    assert isinstance(output, dg.MaterializeResult) and output.data_version == dg.DataVersion("v0")
    assert output.metadata["delta_version"] == dg.MetadataValue.int(0)
    # The raw transform stays a plain function: DataFrame in, DataFrame out, no lakehouse.
    assert component_spec(constant).fn().equals(pd.DataFrame({"x": [1, 2, 3]}))
    rec = records(home).iloc[0]
    assert rec["component"] == "constant" and rec["output_rows"] == 3 and rec["dagster_run_id"] == "EPHEMERAL"


def test_bad_definitions_fail_at_definition_time():
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="lineage_keys names"):
        @component(lineage_keys={"nope": "id"})
        def bad(numbers):
            return numbers
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="needs optional_output"):
        @component(skip_if_inputs_missing=True)
        def bad2(numbers):
            return numbers
