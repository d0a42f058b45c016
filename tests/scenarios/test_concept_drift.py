"""Concept drift on 2026-01-13..14: tipping moves from card to cash riders, so recall falls once
those days' labels land (two days later) - one recall alert, paged once, resolved when it clears."""

from __future__ import annotations

import json

import pandas as pd

from tracelake.jobs.cli import main
from tracelake.monitors.alerts.manager import AlertManager
from tracelake.monitors.alerts.watch import stored_anomalies
from tracelake.monitors.audit_tables import SLA_EVALUATIONS


def test_concept_drift_is_one_recall_alert_that_resolves(concept_drift_scenario):
    lake = concept_drift_scenario.lake
    (alert,) = [a for a in AlertManager(lake).alerts() if a.policy == "tip_recall_sla"]
    assert alert.occurrences >= 2  # breached on several mornings, paged once
    assert alert.status == "resolved"
    evals = lake.store.read(SLA_EVALUATIONS)
    recall = evals[evals["sla"] == "tip_recall"].sort_values("as_of")
    breached_days = recall[recall["breached"]]["as_of"].dt.strftime("%Y-%m-%d").tolist()
    assert breached_days and all("2026-01-16" <= d <= "2026-01-18" for d in breached_days)
    assert not recall[recall["as_of"] < pd.Timestamp("2026-01-15", tz="UTC")]["breached"].any()


def test_prediction_bias_anomalies_are_stored_not_paged(concept_drift_scenario):
    anomalies = stored_anomalies(concept_drift_scenario.lake)
    bias = anomalies[anomalies["monitor"] == "prediction_bias"]
    assert len(bias) and bias["time"].min() >= pd.Timestamp("2026-01-13", tz="UTC")
    assert not [a for a in AlertManager(concept_drift_scenario.lake).alerts() if "bias" in a.policy]


def test_monitoring_cli(concept_drift_scenario, capsys):
    home = concept_drift_scenario.home
    assert main(["--home", home, "alerts", "--status", "all", "--json"]) == 0
    alerts = json.loads(capsys.readouterr().out)
    assert "tip_recall_sla" in {a["policy"] for a in alerts}
    assert main(["--home", home, "metrics", "tip_predictions", "--metric", "recall", "--slice", "payment_type=cash",
                 "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) >= 5
    assert main(["--home", home, "metrics", "cleaned_trips", "--metric", "output_rows", "--anomalies"]) == 0
