"""Every way of profiling in Spark (Tracelake's JVM aggregator, and the two Spark SQL ways used
without it) profiles exactly what the pandas path profiles (``profile_pandas``, which
every stored profile and the drift statistics were built on): counts, nulls, histograms and
categories equal, sums and squares to rounding - on the awkward values too (nulls, NaN,
infinities, a constant column, values beyond the bins, booleans and numbers as categories,
nulls in time and slice columns)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tracelake.lineage.plan_size import estimated_bytes
from tracelake.monitors.drift import jvm_profiles
from tracelake.monitors.drift.profiles import (
    ColumnSpec,
    ProfileSpec,
    derive_spec,
    merge,
    profile_pandas,
    profile_spark,
    whole_window,
)
from tracelake.monitors.drift.spark_profiles import profile_spark_sql
from tracelake.monitors.drift.statistics import compare_profiles

N = 6_000
STRATEGIES = ["jvm", "single", "split"]     # the aggregator and the two Spark SQL ways


def _awkward(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 10, N)
    x[rng.random(N) < 0.02] = np.nan
    x[:3] = [np.inf, -np.inf, 1e300]              # infinities count as nulls; 1e300 is overflow
    x[3:5] = [-1e6, 50.0]                        # underflow; no second huge value (sums would cancel)
    y = pd.array(rng.integers(-5, 200, N), dtype="Int64")
    y[rng.random(N) < 0.05] = pd.NA               # integers with nulls
    ts = pd.Timestamp("2026-01-10", tz="UTC") + pd.to_timedelta(rng.integers(0, 3 * 86_400, N), unit="s")
    ts = pd.Series(ts).where(rng.random(N) > 0.01)  # rows without a time: the "no window" bucket
    zone = pd.Series(rng.choice(["north", "south", "east", "a'b"], N)).where(rng.random(N) > 0.03)
    return pd.DataFrame({
        "ts": ts, "x": x, "y": y, "const": np.full(N, 7.25), "flag": rng.random(N) < 0.3,
        # skewed, so the top_k cut never falls on a tie (ties beyond top_k are ordered arbitrarily)
        "pay": pd.Series(rng.choice(["card", "cash", "app", "voucher", "new"], N, p=[0.4, 0.25, 0.17, 0.11, 0.07]))
        .where(rng.random(N) > 0.02),
        "zone": zone, "small": rng.integers(0, 4, N),
    })


def _spec(frame: pd.DataFrame, top_k: int = 3, **kw) -> ProfileSpec:
    base = derive_spec(frame.iloc[: N // 2], ["x", "y", "const"], ["pay", "flag", "small"], top_k=top_k, **kw)
    # the reference never saw "new" or "voucher": they must show up by name (top_k) or in `other`
    cols = tuple(c if c.name != "pay" else ColumnSpec("pay", "categorical", categories=("card", "cash"))
                 for c in base.columns)
    return ProfileSpec(cols, base.time_column, base.granularity, base.slices, base.top_k)


def _assert_same(spark_profiles, pandas_profiles) -> None:
    by_key = {p.key: p for p in spark_profiles}
    assert set(by_key) == {p.key for p in pandas_profiles}
    for p in pandas_profiles:
        s = by_key[p.key]
        got, want = (s.kind, s.count, s.nulls, s.categories, s.other), (p.kind, p.count, p.nulls, p.categories, p.other)
        assert got == want, p.key
        if p.kind == "numeric":
            assert np.array_equal(s.hist, p.hist), p.key
            assert (s.min, s.max) == (p.min, p.max), p.key
            assert math.isclose(s.sum, p.sum, rel_tol=1e-9, abs_tol=1e-6), p.key
            assert math.isclose(s.sum_sq, p.sum_sq, rel_tol=1e-9, abs_tol=1e-6), p.key
            assert s.center == p.center


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("windows", ["hour", "all"])
def test_jvm_profiles_equal_pandas_profiles(spark, windows, strategy):
    frame = _awkward(1)
    # hourly groups are small (ties between new categories likely): no top_k cut there
    spec = _spec(frame, top_k=3 if windows == "all" else 50, time_column="ts", granularity="hour",
                 slices=["zone", "small"])
    if windows == "all":
        spec = whole_window(spec)
    sdf = spark.createDataFrame(frame).repartition(3)
    assert dict(sdf.dtypes)["y"] == "bigint" and dict(sdf.dtypes)["flag"] == "boolean"
    _assert_same(profile_spark_sql(sdf, spec, strategy=strategy), merge(profile_pandas(frame, spec), top_k=spec.top_k))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_constant_and_all_null_columns(spark, strategy):
    frame = pd.DataFrame({"x": np.full(500, 3.0), "gone": np.full(500, np.nan), "c": ["k"] * 500})
    spec = ProfileSpec((ColumnSpec("x", "numeric", 2.0, 4.0, 8), ColumnSpec("gone", "numeric", 0.0, 1.0, 4),
                        ColumnSpec("c", "categorical", categories=("k",))))
    sdf = spark.createDataFrame(frame)
    _assert_same(profile_spark_sql(sdf, spec, strategy=strategy), merge(profile_pandas(frame, spec)))
    gone = next(p for p in profile_spark_sql(sdf, spec, strategy=strategy) if p.column == "gone")
    assert (gone.count, gone.nulls, int(gone.hist.sum())) == (0, 500, 0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_values_on_the_bin_edges(spark, strategy):
    # lo opens the first bin, every inner edge opens the next, hi itself is overflow, the
    # largest double below hi is still in the last bin.
    edges = [0.0, 2.5, 5.0, 7.5, 10.0, np.nextafter(10.0, 0.0), -1e-9, -0.0]
    frame = pd.DataFrame({"x": edges})
    spec = ProfileSpec((ColumnSpec("x", "numeric", 0.0, 10.0, 4),))
    got = profile_spark_sql(spark.createDataFrame(frame), spec, strategy=strategy)
    _assert_same(got, merge(profile_pandas(frame, spec)))
    assert got[0].hist.tolist() == [1, 2, 1, 1, 2, 1]
    # (0.9 - 0) / (0.9 / 7) is 6.99..., so only the explicit x >= hi rule puts 0.9 in overflow
    top = ProfileSpec((ColumnSpec("x", "numeric", 0.0, 0.9, 7),))
    frame = pd.DataFrame({"x": [0.9, 0.0]})
    got = profile_spark_sql(spark.createDataFrame(frame), top, strategy=strategy)
    _assert_same(got, merge(profile_pandas(frame, top)))
    assert got[0].hist.tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 1]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_a_spec_of_one_kind_of_column(spark, kind, strategy):
    # The job is a union of parts per kind: a spec without one kind has no such part.
    frame = _awkward(5)
    full = _spec(frame, time_column="ts", granularity="hour", slices=["zone"], top_k=50)
    spec = ProfileSpec(tuple(c for c in full.columns if c.kind == kind), full.time_column, full.granularity,
                       full.slices, full.top_k)
    _assert_same(profile_spark_sql(spark.createDataFrame(frame), spec, strategy=strategy),
                 merge(profile_pandas(frame, spec), top_k=spec.top_k))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("windows", ["hour", "all"])
def test_no_rows_no_profiles(spark, windows, strategy):
    # Without keys the moments are a global aggregate, which answers a row even for no input;
    # that row must not become a profile the pandas path does not make.
    frame = _awkward(4)
    spec = _spec(frame, time_column="ts", granularity="hour", slices=["zone"])
    if windows == "all":
        spec = whole_window(spec)
    empty = spark.createDataFrame(frame).limit(0)
    assert profile_spark_sql(empty, spec, strategy=strategy) == merge(profile_pandas(frame.iloc[:0], spec)) == []


def test_auto_uses_the_aggregator_the_install_compiled(spark, monkeypatch):
    # install.sh compiles it into the jars folder every session loads: a test session has it.
    assert jvm_profiles.available(spark)
    calls = []
    monkeypatch.setattr(jvm_profiles, "profile_jvm", lambda df, spec: calls.append(spec) or [])
    profile_spark(spark.createDataFrame(_awkward(7)), whole_window(_spec(_awkward(7))))
    assert len(calls) == 1


def test_without_the_aggregator_auto_falls_back_to_sql_and_says_so(spark, monkeypatch, caplog):
    frame = _awkward(8)
    spec = whole_window(_spec(frame))
    monkeypatch.setattr(jvm_profiles, "_CLASS", ("tracelake", "profiles", "NoSuchClass"))
    assert not jvm_profiles.available(spark)
    with caplog.at_level("WARNING", logger="tracelake.drift"):
        got = profile_spark(spark.createDataFrame(frame), spec)
    _assert_same(got, merge(profile_pandas(frame, spec), top_k=spec.top_k))
    assert "install.sh" in caplog.text
    unseen = ProfileSpec((ColumnSpec("x", "numeric", -1.0, 1.0, 3),))    # never registered before
    with pytest.raises(RuntimeError, match=r"install\.sh"):
        jvm_profiles.profile_jvm(spark.createDataFrame(frame), unseen)


def test_the_size_estimate_picks_the_way(spark, tmp_path):
    # Without the aggregator, a day's partition is profiled the single way; a scan Spark
    # estimates above 64 MB, split.
    small = spark.createDataFrame(_awkward(6))
    assert estimated_bytes(small) < 64 * 1024 * 1024
    spark.range(0, 4_000_000).selectExpr("id", "rand(1) AS x", "rand(2) AS y", "rand(3) AS z") \
        .write.parquet(str(tmp_path / "big"))
    big = spark.read.parquet(str(tmp_path / "big"))
    assert estimated_bytes(big) > 64 * 1024 * 1024


def test_drift_statistics_are_the_same_either_way(spark):
    ref, cur = _awkward(2), _awkward(3).assign(x=lambda f: f["x"] + 4)
    spec = whole_window(_spec(ref))
    via_spark = compare_profiles(profile_spark(spark.createDataFrame(ref), spec),
                                 profile_spark(spark.createDataFrame(cur), spec), spec)
    via_pandas = compare_profiles(merge(profile_pandas(ref, spec), top_k=spec.top_k),
                                  merge(profile_pandas(cur, spec), top_k=spec.top_k), spec)
    for a, b in zip(sorted(via_spark, key=lambda r: r.column), sorted(via_pandas, key=lambda r: r.column), strict=True):
        assert (a.column, a.drifted) == (b.column, b.drifted)
        for field in ("psi", "js", "wasserstein", "ks", "chi2"):
            va, vb = getattr(a, field), getattr(b, field)
            assert (va is None and vb is None) or math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-12), (a.column, field)
