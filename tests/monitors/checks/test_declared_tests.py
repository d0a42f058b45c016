"""Declared tests on a toy component: real Spark + Delta, real Dagster asset checks."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable

from tracelake.lineage import (
    CHECK_RESULTS,
    DeltaIOManager,
    LakehouseResource,
    MlflowResource,
    SparkResource,
    component,
    open_lakehouse,
)
from tracelake.lineage.record import outputs
from tracelake.monitors.checks import (
    ActionLimit,
    AllowedValues,
    Expression,
    InputFreshness,
    NotNull,
    NullRate,
    Pattern,
    Range,
    RowCountVsHistory,
    Schema,
    Unique,
)

days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-12")


class Knobs(dg.Config):
    bad_rows: int = 0
    duplicate: bool = False
    rows: int = 20
    rename: bool = False


@component(
    partitions_def=days,
    schema_evolution="merge",  # lands whatever arrives; the blocking schema test gates downstream
    checks=[
        Schema({"order_id": "string", "amount": "double", "tip": "double", "status": "string", "code": "string"},
               non_null=["order_id"], blocking=True),
        Range("amount", 0, 100, max_fail_rate=0.05),
        Expression("tip_le_amount", "tip <= amount", quarantine=True, max_fail_rate=0.5),
        NotNull("amount", quarantine=True, max_fail_rate=0.5),
        AllowedValues("status", ["open", "paid"]),
        Pattern("code", r"^[A-Z]{3}-\d{2}$", severity="warn"),
        Unique("order_id"),
        NullRate("tip", 0.2),
        RowCountVsHistory(tolerance=0.5, window=5, min_history=2),
        ActionLimit("paid_rate", "avg(CASE WHEN status = 'paid' THEN 1.0 ELSE 0.0 END)", 0.3),
    ],
)
def orders(context: dg.AssetExecutionContext, config: Knobs) -> pd.DataFrame:
    n = config.rows
    frame = pd.DataFrame({
        "order_id": [f"{context.partition_key}-{i}" for i in range(n)],
        "amount": [10.0 + i for i in range(n)],
        "tip": [1.0] * n,
        "status": ["paid" if i % 2 else "open" for i in range(n)],
        "code": ["ABC-12"] * n,
    })
    for i in range(config.bad_rows):
        frame.loc[i, "tip"] = 1000.0          # breaks tip <= amount: quarantined
        frame.loc[i, "amount"] = 250.0 if i % 2 else frame.loc[i, "amount"]
    if config.duplicate:
        frame.loc[1, "order_id"] = frame.loc[0, "order_id"]
    if config.rename:
        frame = frame.rename(columns={"amount": "amount_usd"})
    return frame


@component(partitions_def=days, checks=[InputFreshness(max_missing_partitions=0)],
           ins={"orders": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping(
               start_offset=-2, end_offset=0, allow_nonexistent_upstream_partitions=True))})
def order_totals(orders):
    return orders.groupBy().sum("amount").withColumnRenamed("sum(amount)", "total")


def _resources(home):
    lake = LakehouseResource(home=home, spark=SparkResource(home=home), mlflow=MlflowResource(home=home))
    return {"lakehouse": lake, "delta_io_manager": DeltaIOManager(lakehouse=lake)}


def _run(home, day, raise_on_error=True, **knobs):
    return dg.materialize([orders, order_totals], selection=[orders], partition_key=day, resources=_resources(home),
                          run_config={"ops": {"orders": {"config": knobs}}}, raise_on_error=raise_on_error)


def _evaluations(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_clean_data_passes_every_test_with_observed_and_threshold_metadata(home, spark):
    result = _run(home, "2026-01-02")
    evals = _evaluations(result)
    assert set(evals) == {"schema", "amount_range", "tip_le_amount", "amount_not_null", "status_allowed",
                          "code_pattern", "order_id_unique", "tip_null_rate", "row_count_vs_history",
                          "paid_rate_action_limit"}
    assert all(e.passed for e in evals.values()), {k: v.metadata for k, v in evals.items() if not v.passed}
    assert evals["amount_range"].metadata["threshold"].value == 0.05
    assert evals["amount_range"].metadata["observed"].value == 0.0
    stored = open_lakehouse(home).store.read(CHECK_RESULTS)
    assert len(stored) == 10 and stored["passed"].all()
    run_id = evals["schema"].metadata["tracelake_run_id"].value
    assert set(stored["run_id"]) == {run_id}


@pytest.mark.parametrize("writer", ["delta-rs", "spark"])
def test_failing_rows_are_quarantined_not_dropped_and_counted_per_rule(home, spark, monkeypatch, writer):
    """A few rows set aside are committed by delta-rs, many by Spark: the same table either way."""
    if writer == "spark":
        monkeypatch.setattr(outputs, "SMALL_QUARANTINE_ROWS", 3)
    result = _run(home, "2026-01-03", bad_rows=4)
    evals = _evaluations(result)
    lake = open_lakehouse(home)
    kept = DeltaTable(lake.layout.table("orders")).to_pandas()
    quarantined = DeltaTable(lake.layout.table("orders__quarantine")).to_pandas()
    assert len(kept) == 16 and len(quarantined) == 4          # nothing lost: 16 + 4 = 20
    assert all(list(v) == ["tip_le_amount"] for v in quarantined["_tl_violations"])
    assert evals["tip_le_amount"].passed  # 4/20 = 0.2 <= 0.5
    assert evals["tip_le_amount"].metadata["failing_rows"].value == 4
    assert evals["amount_not_null"].metadata["failing_rows"].value == 0
    # The two quarantined rows with amount 250 never reached the table, so the range test passes.
    assert evals["amount_range"].passed
    rec = lake.store.component_runs().iloc[0]
    assert rec["quarantined_rows"] == 4 and rec["quarantine_table"] == "orders__quarantine"
    # A partition's first set-aside rows are a blind append (no replaceWhere table scan) ...
    quarantine = DeltaTable(lake.layout.table("orders__quarantine"))
    assert quarantine.history(1)[0]["operationParameters"]["mode"] == "Append"
    assert writer.replace("spark", "Apache-Spark") in str(quarantine.history(1)[0].get("engineInfo")
                                                         or quarantine.history(1)[0].get("clientVersion"))
    # Either writer: Spark reads it with the same types, and it keeps its history for years.
    assert spark.read.format("delta").load(quarantine.table_uri).dtypes == [
        ("order_id", "string"), ("amount", "double"), ("tip", "double"), ("status", "string"), ("code", "string"),
        ("_tl_violations", "array<string>"), ("_tl_run_id", "string"), ("_tl_partition", "string")]
    assert quarantine.metadata().configuration["delta.logRetentionDuration"] == lake.settings.retention_interval
    assert quarantine.metadata().partition_columns == ["_tl_partition"]
    # ... and a re-run without bad rows replaces the partition's quarantine.
    _run(home, "2026-01-03")
    assert len(DeltaTable(lake.layout.table("orders__quarantine")).to_pandas()) == 0
    assert DeltaTable(lake.layout.table("orders__quarantine")).history(1)[0]["operationParameters"]["mode"] == "Overwrite"


def test_duplicates_and_a_schema_change_fail_and_the_blocking_one_stops_downstream(home, spark):
    result = _run(home, "2026-01-04", duplicate=True)
    assert not _evaluations(result)["order_id_unique"].passed
    blocked = dg.materialize([orders, order_totals], partition_key="2026-01-05", resources=_resources(home),
                             run_config={"ops": {"orders": {"config": {"rename": True}}}}, raise_on_error=False)
    schema = _evaluations(blocked)["schema"]
    assert not schema.passed and "missing column amount" in schema.metadata["observed_detail"].value
    assert "unexpected column amount_usd" in schema.metadata["observed_detail"].value
    # Write-audit-publish: the gate closed before the commit, so nothing reached the table,
    # downstream did not run, the run is failed everywhere, and the refused batch is kept aside.
    assert not blocked.success and not blocked.get_asset_materialization_events()
    lake = open_lakehouse(home)
    runs = lake.store.component_runs()
    assert "order_totals" not in set(runs["component"])
    rec = runs[runs["partition_key"] == "2026-01-05"].iloc[0]
    assert rec["status"] == "failed" and rec["error_type"].endswith("BlockingCheckFailed")
    assert rec["output_version"] is None and rec["rejected_rows"] == 20
    table = DeltaTable(lake.layout.table("orders")).to_pandas()
    assert "2026-01-05" not in set(table["_tl_partition"])
    kept = DeltaTable(lake.layout.table("orders__rejected")).to_pandas()
    assert len(kept) == 20 and '"amount_usd"' in kept["row_json"].iloc[0]
    assert list(kept["_tl_violations"].iloc[0]) == ["schema"]


def test_a_broken_test_is_a_failed_result_not_a_silent_pass(home, spark):
    @component(name="bad_rule", checks=[Expression("nonsense", "no_such_column > 1")])
    def bad_rule():
        return pd.DataFrame({"x": [1, 2]})

    result = dg.materialize([bad_rule], resources=_resources(home), raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert "the test itself failed" in evaluation.metadata["observed_detail"].value


def test_row_count_history_action_limit_and_input_freshness(home, spark):
    for day in ("2026-01-06", "2026-01-07", "2026-01-08"):
        _run(home, day)
    drop = _evaluations(_run(home, "2026-01-09", rows=5))
    assert not drop["row_count_vs_history"].passed
    assert drop["row_count_vs_history"].metadata["observed"].value == pytest.approx(-0.75)
    # paid_rate is logged as a run metric with history; 5 rows give 2/5 paid vs 0.5: within 0.3.
    assert drop["paid_rate_action_limit"].passed
    assert "vs median 0.5000 of 3 runs" in drop["paid_rate_action_limit"].metadata["observed_detail"].value
    runs = open_lakehouse(home).store.component_runs()
    assert runs[runs["partition_key"] == "2026-01-09"].iloc[0]["metrics"]["paid_rate"] == pytest.approx(0.4)
    # order_totals for the 11th reads the 9th..11th of orders: two never arrived -> staleness, not an error.
    _run(home, "2026-01-11")
    result = dg.materialize([orders, order_totals], selection=[order_totals], partition_key="2026-01-11",
                            resources=_resources(home))
    fresh = _evaluations(result)["input_freshness"]
    assert result.success and not fresh.passed
    assert fresh.metadata["observed"].value == 1
    assert "2026-01-10" in fresh.metadata["observed_detail"].value


@component(partitions_def=days, checks=[Range("amount", 0, 1000)])
def corrupt_orders(orders):
    return orders.selectExpr("order_id", "CASE WHEN amount > 0 THEN raise_error('row 7 of the feed is corrupt') "
                                         "ELSE amount END AS amount")


@component(partitions_def=days, checks=[NotNull("amount", quarantine=True), Range("amount", 0, 1000)])
def corrupt_quarantined(orders):
    return orders.selectExpr("order_id", "CASE WHEN amount > 0 THEN raise_error('row 7 of the feed is corrupt') "
                                         "ELSE amount END AS amount")


@component(partitions_def=days)
def plain_amounts(orders):
    return orders.selectExpr("order_id", "amount")


@component(partitions_def=days, checks=[Range("amount", 0, 1000), NotNull("order_id"), Unique("order_id")])
def checked_amounts(orders):
    return orders.selectExpr("order_id", "amount")


@component(partitions_def=days, checks=[NotNull("amount", quarantine=True), Range("amount", 0, 1000)])
def quarantined_amounts(orders):
    return orders.selectExpr("order_id", "amount")


def test_rows_that_cannot_be_computed_fail_the_run_with_the_functions_error_not_the_tests(home, spark):
    """No separate count runs before the tests any more: the tests' pass (or the quarantine's
    counts) is the first job over the rows, so a function that fails at run time must still
    surface as the run's own error - not as every test 'failing'."""
    day = "2026-01-09"
    _run(home, day)
    for asset in (corrupt_orders, corrupt_quarantined):
        result = dg.materialize([orders, asset], selection=[asset], partition_key=day, resources=_resources(home),
                                raise_on_error=False)
        assert not result.success
        lake = open_lakehouse(home)
        rec = lake.store.component_runs().set_index("component").loc[asset.key.path[-1]]
        assert rec["status"] == "failed" and "row 7 of the feed is corrupt" in rec["error_message"]
        checks = lake.store.read_arrow(CHECK_RESULTS).to_pandas()
        assert rec["run_id"] not in set(checks["run_id"])     # no test verdict was made up


def _spark_actions(spark, asset, day: str, home: str) -> set[str]:
    """The actions (call sites: "collect at .../checks.py:194") of the Spark jobs one
    materialisation ran - with adaptive execution one action may run several jobs."""
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup(None))
    dg.materialize([orders, asset], selection=[asset], partition_key=day, resources=_resources(home))
    sites = set()
    for job in set(tracker.getJobIdsForGroup(None)) - before:
        info = tracker.getJobInfo(job)
        for stage in (info.stageIds if info else []):
            stage_info = tracker.getStageInfo(stage)
            if stage_info is not None:
                sites.add(_action(stage_info.name))
    return sites


def _action(site: str) -> str:
    """A stage's action, with its call site only where it is Tracelake's tests' pass: the same
    commit's write is named "save at NativeMethodAccessorImpl.java:0" or "save at <unknown>:0"
    depending on which jobs the process ran before (seen after small quarantines' Arrow reads)."""
    return site if "lineage/record/checks.py" in site else site.split(" at ")[0]


def test_declared_tests_cost_one_spark_action_with_or_without_a_quarantine(home, spark):
    """Counted in Spark's own tracker: the same rows written plain, with three tests, and with a
    quarantining test (no row fails it, so no quarantine commit). The rows - and the rows set
    aside, per rule - are counted by the tests' pass, never by a count of their own."""
    day = "2026-01-10"
    _run(home, day)
    plain, tested, quarantined = (_spark_actions(spark, a, day, home)
                                  for a in (plain_amounts, checked_amounts, quarantined_amounts))
    assert len(tested - plain) == 1 and len(quarantined - plain) == 1, (plain, tested, quarantined)
    assert all("lineage/record/checks.py" in site for site in (tested | quarantined) - plain)


@component(partitions_def=days, checks=[Range("amount", 0, 1000), Unique("order_id")])
def spread_amounts(orders):
    return orders.selectExpr("order_id", "amount").repartition(3)


@pytest.mark.parametrize("small", [True, False])
def test_a_small_batch_is_judged_and_committed_in_one_task(home, spark, monkeypatch, small):
    """A day's rows are one partition before the tests (whatever partitioning the function left):
    the tests' pass - a global aggregate and a distinct key count - then needs no shuffle, and
    the commit writes one file. Above the size limit the function's partitioning stays."""
    from tracelake.lineage import plan_size

    day = "2026-01-11"
    _run(home, day)
    if not small:
        monkeypatch.setattr(plan_size, "SINGLE_TASK_BELOW_BYTES", 0)
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup(None))
    dg.materialize([orders, spread_amounts], selection=[spread_amounts], partition_key=day, resources=_resources(home))
    tests_pass = [tracker.getStageInfo(stage) for job in set(tracker.getJobIdsForGroup(None)) - before
                  for stage in tracker.getJobInfo(job).stageIds]
    tests_pass = [s for s in tests_pass if s is not None and "lineage/record/checks.py" in s.name]
    files = DeltaTable(open_lakehouse(home).layout.table("spread_amounts")).get_add_actions(flatten=True).num_rows
    assert tests_pass
    if small:
        assert {s.numTasks for s in tests_pass} == {1} and files == 1, ([(s.name, s.numTasks) for s in tests_pass], files)
    else:
        assert max(s.numTasks for s in tests_pass) > 1 and files == 3, ([(s.name, s.numTasks) for s in tests_pass], files)
    lake = open_lakehouse(home)
    results = lake.store.read_arrow(CHECK_RESULTS).to_pandas()
    run_id = lake.store.component_runs().set_index("component").loc["spread_amounts", "run_id"]
    assert set(results[results["run_id"] == run_id]["passed"]) == {True}


@pytest.mark.parametrize("duplicate", [False, True])
def test_key_grouping_aggregates_apart_on_a_large_input_give_the_same_verdicts(spark, monkeypatch, duplicate):
    """On a large input Unique's distinct key hashes get a pass of their own (beside the other
    aggregates Spark would carry them all through a map of one entry per key); the verdicts
    and counts are the same either way."""
    from tracelake.lineage.record import checks as runner

    rows = [(f"o-{i}", float(i % 50), None if i == 7 else "paid") for i in range(400)]
    if duplicate:
        rows[1] = ("o-0", 1.0, "paid")
    frame = spark.createDataFrame(pd.DataFrame(rows, columns=["order_id", "amount", "status"]))
    tests = [Range("amount", 0, 40), NotNull("status"), Unique("order_id")]
    assert not runner._large(frame)                       # a day's rows (as a component returns them): one pass

    def verdicts():
        ctx = runner.CheckContext(run=None, lake=None, frame=frame, rows=None)
        return [(r.name, r.passed, r.failing_rows, r.observed_value) for r in runner.evaluate_checks(tests, ctx)], ctx.rows

    together = verdicts()
    passes = []
    real_select = type(frame).selectExpr
    monkeypatch.setattr(runner, "_KEYED_APART_ABOVE_BYTES", -1)
    monkeypatch.setattr(type(frame), "selectExpr", lambda self, *e: passes.append(e) or real_select(self, *e))
    apart = verdicts()
    assert apart == together
    assert together[0][2] == ("order_id_unique", not duplicate, int(duplicate), int(duplicate))
    assert together[1] == 400
    assert len(passes) == 2 and any("DISTINCT" in e for e in passes[1]) and not any("DISTINCT" in e for e in passes[0])


@component(partitions_def=days, checks=[Expression("amount_small", "amount < 15", quarantine=True)])
def stamped_amounts(orders):
    return orders.selectExpr("order_id", "amount", "timestamp_ntz'2026-01-01 00:00:00' AS seen_at", "'eu' AS region")


def test_a_quarantine_with_table_features_and_literal_columns_stays_readable_by_spark(home, spark):
    """A timestamp_ntz column makes delta-rs write a table-features protocol, where a NOT NULL
    column (a literal, here) would make Spark refuse the table: the small path writes nullable."""
    day = "2026-01-11"
    _run(home, day)
    dg.materialize([orders, stamped_amounts], selection=[stamped_amounts], partition_key=day, resources=_resources(home))
    path = open_lakehouse(home).layout.table("stamped_amounts__quarantine")
    assert "delta-rs" in str(DeltaTable(path).history(1)[0].get("clientVersion"))
    kept = spark.read.format("delta").load(path)
    assert kept.count() == 15 and dict(kept.dtypes)["seen_at"] == "timestamp_ntz"


def _split_apart(runner, tests, frame):
    """The quarantine counted on its own, then the tests over the kept rows: the two-job way."""
    from tracelake.lineage.record import quarantine_marks as marks

    marked = marks.mark_quarantine(tests, frame)
    rules = [name for name, _ in marks.quarantine_rules(tests)]
    total, quarantined, by_rule = marks.quarantine_counts(marked, rules)
    good, _ = marks.split_marked(marked)
    ctx = runner.CheckContext(run=None, lake=None, frame=good, rows=total - quarantined, quarantined_rows=quarantined,
                              quarantined_by_rule=by_rule)
    verdicts = [(r.name, r.passed, r.failing_rows, r.observed_value) for r in runner.evaluate_checks(tests, ctx)]
    return verdicts, (ctx.rows, quarantined, by_rule), marked, rules, good


@pytest.mark.parametrize("keyed_apart", [False, True])
def test_the_quarantine_counted_in_the_tests_pass_gives_the_same_verdicts_and_counts(spark, monkeypatch, keyed_apart):
    """One job instead of two: grouped by whether a row is kept, the kept group's aggregates are
    the tests' over the rows to be written, and the other group's are the quarantine's counts -
    the same verdicts, rows and per-rule counts as counting first and testing the kept rows."""
    from tracelake.lineage.record import checks as runner
    from tracelake.lineage.record import quarantine_marks as marks

    rows = [(f"o-{i}", float(1 + i % 60), 1.0, "paid") for i in range(300)]
    rows[3] = ("o-3", None, 1.0, "paid")        # fails NotNull (and tip <= amount: null)
    rows[4] = ("o-4", 5.0, 99.0, "paid")        # fails tip <= amount (quarantined)
    rows[5] = ("o-5", None, 99.0, "paid")       # fails both: each row counted once in the rows set aside
    rows[6] = ("o-0", 55.0, 1.0, None)          # a duplicate key and a null status: kept, and judged
    frame = spark.createDataFrame(pd.DataFrame(rows, columns=["order_id", "amount", "tip", "status"]))
    tests = [NotNull("amount", quarantine=True, max_fail_rate=0.5),
             Expression("tip_le_amount", "tip <= amount", quarantine=True, max_fail_rate=0.5),
             Range("amount", 0, 50, max_fail_rate=0.5), NotNull("status"), Unique("order_id"),
             ActionLimit("paid_rate", "avg(CASE WHEN status = 'paid' THEN 1.0 ELSE 0.0 END)", 0.999)]
    if keyed_apart:
        monkeypatch.setattr(runner, "_KEYED_APART_ABOVE_BYTES", -1)
    apart, counts, marked, rules, good = _split_apart(runner, tests, frame)
    ctx = runner.CheckContext(run=None, lake=None, frame=good, rows=None)
    judged = runner.evaluate_checks_marked(tests, ctx, marked, rules)
    assert judged is not None
    results, together = judged
    assert [(r.name, r.passed, r.failing_rows, r.observed_value) for r in results] == apart
    assert (ctx.rows, together.quarantined, together.by_rule) == counts == (
        297, 3, {"amount_not_null": 2, "tip_le_amount": 3})   # a null amount fails both rules
    assert together.rows == 300 and (ctx.quarantined_rows, ctx.quarantined_by_rule) == counts[1:]
    verdicts = {name: (passed, failing) for name, passed, failing, _ in apart}
    assert verdicts["order_id_unique"] == (False, 1) and verdicts["status_not_null"] == (False, 1)
    assert verdicts["paid_rate_action_limit"][0] is False
    # Every row set aside: the kept rows' aggregates are a global aggregate over nothing, which
    # a group cannot give - the caller counts and tests apart.
    everything = marks.mark_quarantine([Expression("never", "false", quarantine=True)], frame)
    assert runner.evaluate_checks_marked(tests, runner.CheckContext(None, None, good, None), everything, ["never"]) is None


@component(partitions_def=days, checks=[Expression("numeric_code", "code rlike '^[0-9]+$'", quarantine=True,
                                                   max_fail_rate=0.5),
                                        Expression("positive_code", "cast(code AS int) > 0")])
def coded_orders(orders):
    return orders.selectExpr("order_id", "CASE WHEN amount < 12 THEN 'n/a' ELSE string(int(amount)) END AS code")


def test_a_test_that_errs_on_a_row_set_aside_is_judged_on_the_kept_rows(home, spark):
    """In one job with the quarantine's counts, a test's expression meets the rows set aside too
    (``cast('n/a' AS int)`` fails under ANSI SQL). The run then counts and tests apart: the test
    judges the kept rows, as declared, and the rows set aside are kept in the quarantine."""
    assert spark.conf.get("spark.sql.ansi.enabled") == "true"
    day = "2026-01-08"
    _run(home, day)
    result = dg.materialize([orders, coded_orders], selection=[coded_orders], partition_key=day,
                            resources=_resources(home))
    evals = _evaluations(result)
    assert evals["positive_code"].passed and evals["numeric_code"].passed, {k: v.metadata for k, v in evals.items()}
    assert evals["numeric_code"].metadata["failing_rows"].value == 2
    lake = open_lakehouse(home)
    assert len(DeltaTable(lake.layout.table("coded_orders")).to_pandas()) == 18
    assert sorted(DeltaTable(lake.layout.table("coded_orders__quarantine")).to_pandas()["code"]) == ["n/a", "n/a"]
    rec = lake.store.component_runs().set_index("component").loc["coded_orders"]
    assert rec["status"] == "succeeded" and rec["quarantined_rows"] == 2


def test_a_row_is_marked_with_the_names_of_the_quarantining_rules_it_breaks(spark):
    """The marks are one SQL expression over every quarantining rule, a window one included."""
    from tracelake.lineage.record import quarantine_marks as marks

    frame = spark.createDataFrame(pd.DataFrame({"order_id": ["a", "a", "b", None], "amount": [1.0, 2.0, -1.0, 3.0]}))
    class HandWritten:   # a test outside monitors.checks: its name is not held to [A-Za-z0-9_]
        name, quarantine = "it's \\ small", True

        def row_condition(self):
            return "amount < 2.5"

    tests = [Expression("amount_positive", "amount > 0", quarantine=True), NotNull("order_id", quarantine=True),
             Unique("order_id", quarantine=True), Range("amount", 0, 1.5), HandWritten()]   # Range: no mark
    got = {(r["order_id"], r["amount"]): list(r["_tl_violations"])
           for r in marks.mark_quarantine(tests, frame).collect()}
    assert got[("b", -1.0)] == ["amount_positive"] and got[(None, 3.0)] == ["order_id_not_null", "it's \\ small"]
    assert sorted([got[("a", 1.0)], got[("a", 2.0)]]) == [[], ["order_id_unique"]]   # one of the two stays
