"""Drift on the covariate-shift scenario: from 2026-01-14 a new pickup zone (Lakeside, with long
trips) takes a quarter of the demand; the model was trained on 2026-01-05..11."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from deltalake import DeltaTable
from scipy import stats

from tracelake.assets import DRIFT_TARGETS
from tracelake.jobs.cli import main
from tracelake.lineage.record.delta_meta import latest_version
from tracelake.lineage.record.tables import read_version
from tracelake.monitors.alerts.manager import AlertManager
from tracelake.monitors.drift.job import load_profiles
from tracelake.monitors.drift.profile_specs import load_spec
from tracelake.monitors.drift.profiles import merge, profile_spark, whole_window
from tracelake.monitors.drift.query import drift_of_window, explain_drift, parse_window

FEATURES = next(t for t in DRIFT_TARGETS if t.table == "trip_features")
SHIFT_DAY = "2026-01-14"


@pytest.fixture(scope="module")
def drift(covariate_shift_scenario):
    return DeltaTable(covariate_shift_scenario.lake.layout.table("data_drift")).to_pandas()


def _overall(drift, table, day):
    rows = drift[(drift["table_name"] == table) & (drift["drift_date"] == day) & (drift["slice_key"] == "all")]
    return rows.set_index("column_name")


def test_the_new_zone_is_in_the_data_from_its_start_date(covariate_shift_scenario):
    feats = DeltaTable(covariate_shift_scenario.lake.layout.table("trip_features")).to_pandas(
        columns=["_tl_partition", "pickup_zone"])
    assert feats[feats["pickup_zone"] == "Lakeside"]["_tl_partition"].min() == SHIFT_DAY


def test_covariate_shift_flags_the_shifted_columns_and_not_the_others(drift):
    day = _overall(drift, "trip_features", SHIFT_DAY)
    flagged = set(day.index[day["drifted"].astype(bool)])
    assert {"pickup_zone", "distance_km"} <= flagged
    assert not {"payment_type", "passenger_count"} & flagged
    assert "new categories: Lakeside" in day.loc["pickup_zone", "detail"]
    # The multivariate signal (a classifier telling reference rows from the day's) agrees.
    multivariate = day[day["kind"] == "multivariate"]
    assert len(multivariate) == 1 and bool(multivariate["drifted"].iloc[0])
    # Before the shift the zone mix matches the training data.
    for before in ("2026-01-12", "2026-01-13"):
        assert not _overall(drift, "trip_features", before).loc["pickup_zone", "drifted"]


def test_stored_statistics_match_scipy_on_the_full_data(covariate_shift_scenario, drift, spark):
    """The day's stored figures against scipy over every row of the day and of the reference."""
    lake = covariate_shift_scenario.lake
    row = _overall(drift, "trip_features", SHIFT_DAY)
    ref_table, ref_version = row.loc["distance_km", "reference_table"], int(row.loc["distance_km", "reference_version"])
    assert ref_table == "training_set"
    ref = read_version(spark, lake.layout.table(ref_table), ref_version).toPandas()
    ref = ref[ref["_tl_partition"] == "2026-01-12"] if "_tl_partition" in ref else ref
    path = lake.layout.table("trip_features")
    cur = read_version(spark, path, latest_version(path), [SHIFT_DAY]).toPandas()
    a, b = ref["distance_km"].to_numpy(), cur["distance_km"].to_numpy()
    d = row.loc["distance_km"]
    w = stats.wasserstein_distance(a, b)
    assert abs(d["wasserstein"] - w) <= d["wasserstein_bound"]
    assert d["wasserstein_norm"] == pytest.approx(w / np.std(a), rel=0.05)
    ks = stats.ks_2samp(a, b).statistic
    assert d["ks"] - 1e-12 <= ks <= d["ks"] + d["ks_bound"] + 1e-12
    zones = sorted(set(ref["pickup_zone"]) | set(cur["pickup_zone"]))
    table = np.array([[int((ref["pickup_zone"] == z).sum()) for z in zones],
                      [int((cur["pickup_zone"] == z).sum()) for z in zones]])
    chi2, _, _, _ = stats.chi2_contingency(table, correction=False)
    assert row.loc["pickup_zone", "chi2"] == pytest.approx(chi2, rel=1e-9)


def test_evidently_report_is_saved_linked_and_compared(covariate_shift_scenario, drift):
    day = _overall(drift, "trip_features", SHIFT_DAY)
    html, snapshot = day["report_html"].iloc[0], day["report_json"].iloc[0]
    assert Path(html).stat().st_size > 10_000 and html.startswith(covariate_shift_scenario.home)
    assert json.loads(Path(snapshot).read_text())["metrics"]
    assert day.loc[day["kind"] != "multivariate", "evidently_method"].notna().all()
    # Where both judged, a disagreement is recorded with an explanation.
    judged = day[day["verdicts_agree"].notna()]
    assert len(judged) >= 8
    for _, r in judged[~judged["verdicts_agree"].astype(bool)].iterrows():
        assert "Evidently" in r["detail"]
    event = covariate_shift_scenario.instance.get_latest_materialization_event(dg.AssetKey("data_drift"))
    metadata = event.asset_materialization.metadata
    assert "report/trip_features" in metadata and "reference/trip_features" in metadata


def test_stored_hourly_profiles_merge_to_the_day_exactly(covariate_shift_scenario, spark):
    lake = covariate_shift_scenario.lake
    spec = load_spec(lake, "trip_features", FEATURES.columns)
    window = parse_window(lake, "trip_features", SHIFT_DAY)
    hourly = load_profiles(lake.layout.table("data_profiles"), "trip_features", spec, partitions=list(window.days))
    assert len({p.window_start for p in hourly}) > 12
    path = lake.layout.table("trip_features")
    day = read_version(spark, path, latest_version(path), [SHIFT_DAY])
    direct = {p.key[0:1] + p.key[2:]: p for p in profile_spark(day, whole_window(spec))}
    for p in merge(hourly, window="all"):
        d = direct[(p.column, p.slice_key, p.slice_value)]
        assert (p.count, p.nulls, p.categories) == (d.count, d.nulls, d.categories)
        if p.kind == "numeric":
            assert np.array_equal(p.hist, d.hist)


def test_profiles_read_only_the_new_partition(covariate_shift_scenario, record_of):
    prof = record_of(covariate_shift_scenario.lake, "data_profiles", SHIFT_DAY)
    inputs = {i["name"]: i for i in prof["inputs"]}
    assert list(inputs["trip_features"]["partitions"]) == [SHIFT_DAY]
    assert list(inputs["tip_predictions"]["partitions"]) == [SHIFT_DAY]


def test_sliding_window_concentrates_drift_in_the_new_zone(covariate_shift_scenario):
    lake = covariate_shift_scenario.lake
    result = drift_of_window(lake, FEATURES, parse_window(lake, "trip_features", "2026-01-14..2026-01-15"))
    lakeside = [r for r in result.results if r.column == "distance_km" and r.slice_value == "Lakeside"]
    assert lakeside and lakeside[0].drifted
    view = explain_drift(lake, result)
    assert view["drifted_columns"] and view["slices"][0]["slice"] == "pickup_zone=Lakeside"


def test_drift_is_stored_not_paged_by_default(covariate_shift_scenario, drift):
    assert drift["drifted"].fillna(False).astype(bool).any()  # there is drift to page about ...
    alerts = AlertManager(covariate_shift_scenario.lake).alerts()
    # ... and none of it paged: no target declares an alert policy.
    assert not [a for a in alerts if a.component in {t.table for t in DRIFT_TARGETS} and "drift" in a.policy]


def test_drift_cli_and_sql(covariate_shift_scenario, capsys):
    home = covariate_shift_scenario.home
    assert main(["--home", home, "drift", "trip_features", "--window", SHIFT_DAY, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    by_col = {r["column"]: r for r in out["results"]}
    assert by_col["pickup_zone"]["drifted"] == "DRIFT" and out["reference"]["kind"] == "lineage"
    assert main(["--home", home, "drift", "tip_predictions", "--window", "2026-01-13..2026-01-15",
                 "--reference", "fixed:2026-01-12..2026-01-12", "--slice", "pickup_zone"]) == 0
    text = capsys.readouterr().out
    assert "pickup_zone=" in text and "fixed baseline" in text
    assert main(["--home", home, "drift", "trip_features", "--window", "2026-02-30"]) == 2
    assert "--window" in capsys.readouterr().err
    assert main(["--home", home, "drift", "nope"]) == 2
    assert main(["--home", home, "sql", "SELECT drift_date, score FROM data_drift WHERE column_name = 'pickup_zone' "
                 "AND slice_key = 'all' AND table_name = 'trip_features' ORDER BY drift_date", "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [h["drift_date"] for h in history] == ["2026-01-12", "2026-01-13", "2026-01-14", "2026-01-15"]
