"""Profiles merge exactly, and every drift statistic matches a reference implementation.

References: scipy for KS / Wasserstein / chi-square, and exact PSI / Jensen-Shannon computed from
the full data with NumPy on the same bins. Tolerances are the error bounds the module states.
"""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from tracelake.monitors.drift.domain_classifier import domain_classifier_auc
from tracelake.monitors.drift.profiles import (
    derive_spec,
    from_rows,
    merge,
    profile_pandas,
    profile_spark,
    quantile,
    to_rows,
    whole_window,
)
from tracelake.monitors.drift.statistics import (
    PSI_EPSILON,
    DriftThresholds,
    categorical_drift,
    coarse_groups,
    compare_profiles,
    numeric_drift,
)

N = 48_000


def _frame(seed: int, shift: float = 0.0, zones=("north", "south", "east"), start="2026-01-10") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, N), unit="s")
    x = rng.normal(10 + shift, 2, N)
    x[rng.random(N) < 0.01] = np.nan
    return pd.DataFrame({
        "ts": ts, "x": x, "y": rng.exponential(3, N),
        "zone": rng.choice(list(zones), N, p=None),
        "pay": np.where(rng.random(N) < 0.7, "card", "cash"),
    })


@pytest.fixture(scope="module")
def spec():
    return derive_spec(_frame(1), ["x", "y"], ["zone", "pay"], time_column="ts", granularity="hour",
                       slices=["zone"])


def _one(profiles, column, slice_key="all", slice_value="all"):
    hits = [p for p in profiles if p.column == column and p.slice_key == slice_key and p.slice_value == slice_value]
    assert len(hits) == 1, hits
    return hits[0]


def test_24_hourly_profiles_merge_to_the_day_exactly(spec):
    frame = _frame(2)
    hourly = profile_pandas(frame, spec)
    assert len({p.window_start for p in hourly}) == 24
    merged = merge(hourly, window="all")
    direct = merge(profile_pandas(frame, whole_window(spec)))
    for d in direct:
        m = _one(merged, d.column, d.slice_key, d.slice_value)
        assert (m.count, m.nulls, m.other) == (d.count, d.nulls, d.other)
        assert m.categories == d.categories
        if d.kind == "numeric":
            assert np.array_equal(m.hist, d.hist)
            assert m.min == d.min and m.max == d.max
            assert m.sum == pytest.approx(d.sum, rel=1e-12)
    x = _one(merged, "x")
    assert x.count + x.nulls == N and x.nulls == int(frame["x"].isna().sum())
    assert x.mean == pytest.approx(frame["x"].mean(), rel=1e-12)
    assert x.std == pytest.approx(frame["x"].std(), rel=1e-9)


def test_histogram_quantiles_are_within_one_bin(spec):
    frame = _frame(3)
    x = _one(merge(profile_pandas(frame, spec), window="all"), "x")
    col = spec.column("x")
    width = (col.hi - col.lo) / col.bins
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        assert abs(quantile(x, col, q) - frame["x"].quantile(q)) <= width


def test_profiles_survive_the_storage_round_trip(spec):
    profiles = profile_pandas(_frame(4), spec)
    back = from_rows(to_rows(profiles, spec, table="t", granularity="hour"))
    for a, b in zip(profiles, back, strict=True):
        assert a.key == b.key and a.count == b.count and a.categories == b.categories
        assert (a.hist is None and b.hist is None) or np.array_equal(a.hist, b.hist)


def test_spark_profiles_equal_pandas_profiles(spark, spec):
    frame = _frame(5)
    sdf = spark.createDataFrame(frame).repartition(3)
    from_spark = {p.key: p for p in profile_spark(sdf, spec)}
    from_pandas = merge(profile_pandas(frame, spec))
    assert len(from_spark) == len(from_pandas)
    for p in from_pandas:
        s = from_spark[p.key]
        assert (s.count, s.nulls, s.categories) == (p.count, p.nulls, p.categories)
        if p.kind == "numeric":
            assert np.array_equal(s.hist, p.hist)


def _full(frame, spec, **kw):
    return merge(profile_pandas(frame, whole_window(spec)), **kw)


def test_numeric_statistics_match_scipy_and_exact_full_data(spec):
    ref, cur = _frame(6), _frame(7, shift=0.6)
    r, c = _one(_full(ref, spec), "x"), _one(_full(cur, spec), "x")
    col = spec.column("x")
    result = numeric_drift(r, c, col)
    a, b = ref["x"].dropna().to_numpy(), cur["x"].dropna().to_numpy()

    # Exact PSI / JS from the full data on the same bins.
    edges = np.concatenate([[-np.inf], col.edges(), [np.inf]])
    fine_p = np.histogram(a, edges)[0] / len(a)
    groups = coarse_groups(fine_p)
    assert len(set(groups)) == 10
    # The decile buckets as plain edges, then the full data bucketed with NumPy.
    cuts = edges[np.concatenate([[0], np.flatnonzero(np.diff(groups)) + 1, [len(groups)]])]
    p = np.histogram(a, cuts)[0] / len(a)
    q = np.histogram(b, cuts)[0] / len(b)
    pe, qe = np.where(p == 0, PSI_EPSILON, p), np.where(q == 0, PSI_EPSILON, q)
    assert result.psi == pytest.approx(np.sum((qe - pe) * np.log(qe / pe)), rel=1e-9)
    assert result.js == pytest.approx(distance.jensenshannon(p, q), rel=1e-9)

    w = stats.wasserstein_distance(a, b)
    assert abs(result.wasserstein - w) <= result.wasserstein_bound
    assert result.wasserstein == pytest.approx(w, rel=0.02)   # the bound is worst case; smooth data is far closer
    assert result.wasserstein_norm == pytest.approx(w / np.std(a), rel=0.02)

    ks = stats.ks_2samp(a, b)
    assert result.ks <= ks.statistic + 1e-12 <= result.ks + result.ks_bound
    assert result.drifted and result.method == "wasserstein_norm"   # 0.3 sigma shift


def test_small_shift_is_significant_but_not_drift(spec):
    """At tens of thousands of rows a KS p-value flags a 0.05 sigma shift; the verdict does not."""
    big = pd.concat([_frame(8 + i) for i in range(4)])
    shifted = pd.concat([_frame(20 + i, shift=0.1) for i in range(4)])
    result = numeric_drift(_one(_full(big, spec), "x"), _one(_full(shifted, spec), "x"), spec.column("x"))
    assert result.ks_pvalue < 0.01
    assert result.wasserstein_norm < 0.1 and result.drifted is False


def test_categorical_statistics_match_scipy(spec):
    ref = _frame(9)
    cur = _frame(10, zones=("north", "south", "east", "lakeside"))
    r, c = _one(_full(ref, spec), "zone"), _one(_full(cur, spec), "zone")
    result = categorical_drift(r, c)
    table = pd.crosstab(pd.concat([ref["zone"], cur["zone"]]),
                        np.repeat(["ref", "cur"], [len(ref), len(cur)])).T.to_numpy()
    chi2, pvalue, _, _ = stats.chi2_contingency(table, correction=False)
    assert result.chi2 == pytest.approx(chi2, rel=1e-9)
    assert result.chi2_pvalue == pytest.approx(pvalue, abs=1e-12)
    keys = sorted(set(ref["zone"]) | set(cur["zone"]))
    p = ref["zone"].value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
    q = cur["zone"].value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
    assert result.js == pytest.approx(distance.jensenshannon(p, q), rel=1e-9)
    assert result.drifted and "lakeside" in result.detail


def test_compare_flags_the_shifted_column_and_slice_only(spec):
    ref = _frame(11)
    cur = _frame(12)
    north = cur["zone"] == "north"
    cur.loc[north, "y"] = cur.loc[north, "y"] + 3.0     # shift y in one slice only
    results = compare_profiles(_full(ref, spec), _full(cur, spec), spec)
    drifted = {(r.column, r.slice_key, r.slice_value) for r in results if r.drifted}
    assert ("y", "zone", "north") in drifted
    assert not any(col == "x" for col, _, _ in drifted)
    assert ("y", "zone", "south") not in drifted and ("pay", "all", "all") not in drifted


def test_too_few_rows_is_no_verdict(spec):
    small = _frame(13).head(10)
    r = _one(_full(_frame(14), spec), "x")
    c = _one(_full(small, spec), "x")
    result = numeric_drift(r, c, spec.column("x"), DriftThresholds())
    assert result.drifted is None and "too few rows" in result.detail


def test_domain_classifier_sees_a_joint_shift_the_marginals_hide():
    rng = np.random.default_rng(15)
    x_ref, x_cur = rng.normal(size=3000), rng.normal(size=3000)
    ref = pd.DataFrame({"x": x_ref, "y": x_ref + rng.normal(0, 0.3, 3000), "c": rng.choice(["a", "b"], 3000)})
    cur = pd.DataFrame({"x": x_cur, "y": -x_cur + rng.normal(0, 0.3, 3000), "c": rng.choice(["a", "b"], 3000)})
    spec = derive_spec(ref, ["x", "y"], ["c"])
    marginal = compare_profiles(merge(profile_pandas(ref, spec)), merge(profile_pandas(cur, spec)), spec)
    assert not any(r.drifted for r in marginal)          # every column alone looks the same
    assert domain_classifier_auc(ref, cur, ["c"]).drifted
    same = pd.DataFrame({"x": x_cur, "y": x_cur + rng.normal(0, 0.3, 3000), "c": rng.choice(["a", "b"], 3000)})
    unchanged = domain_classifier_auc(ref, same, ["c"])
    assert unchanged.auc < 0.6 and not unchanged.drifted


def test_drift_opens_an_alert_only_where_a_policy_says_so(lake, spec):
    from datetime import datetime, timedelta

    from tracelake.monitors.alerts.manager import AlertManager, AlertPolicy
    from tracelake.monitors.drift.job import DriftTarget, observe_drift_alert

    ref, cur = _full(_frame(30), spec), _full(_frame(31, shift=1.0), spec)
    shifted = compare_profiles(ref, cur, spec)
    calm = compare_profiles(ref, _full(_frame(32), spec), spec)
    manager = AlertManager(lake)
    when = datetime(2026, 1, 20, tzinfo=UTC)
    stored_only = DriftTarget("t", numeric=("x", "y"), categorical=("zone", "pay"))
    assert observe_drift_alert(manager, stored_only, shifted, "2026-01-20", when) is None
    paging = DriftTarget("t", numeric=("x", "y"), categorical=("zone", "pay"),
                         alert=AlertPolicy("x_drift", severity="warn", channels=()), alert_columns=("x",))
    assert observe_drift_alert(manager, paging, shifted, "2026-01-20", when) == "opened"
    assert observe_drift_alert(manager, paging, shifted, "2026-01-21", when + timedelta(days=1)) == "repeated"
    assert observe_drift_alert(manager, paging, calm, "2026-01-22", when + timedelta(days=2)) == "resolved"
    (alert,) = [a for a in manager.alerts() if a.policy == "x_drift"]
    assert alert.status == "resolved" and alert.occurrences == 2
    assert "drift in t on 2026-01-21: x" in alert.message  # the latest breach
