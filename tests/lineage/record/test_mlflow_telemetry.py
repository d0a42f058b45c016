"""Opening the MLflow store turns MLflow's usage telemetry off, unless the user asked for it."""

from __future__ import annotations

import os

import pytest
from mlflow.telemetry.utils import is_telemetry_disabled

from tracelake.lineage.record.mlflow_link import MlflowLink


@pytest.mark.parametrize(("preset", "expected"), [(None, "true"), ("false", "false")])
def test_the_store_sends_no_usage_events_unless_asked(tmp_path, monkeypatch, preset, expected):
    if preset is None:
        monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", preset)
    MlflowLink(f"sqlite:///{tmp_path}/mlflow.db", "http://127.0.0.1:5000", str(tmp_path / "artifacts"), "t")
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == expected
    if preset is None:
        assert is_telemetry_disabled()   # what MLflow itself decides from the environment
