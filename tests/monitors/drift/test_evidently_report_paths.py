"""Where an Evidently report ends up: beside the lakehouse, also when the lakehouse is an object store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyarrow import fs as pafs

from tracelake.monitors.drift import evidently_report
from tracelake.monitors.drift.evidently_report import evidently_drift

pytestmark = pytest.mark.unit


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    return (pd.DataFrame({"fare": rng.normal(10, 2, 300)}), pd.DataFrame({"fare": rng.normal(13, 2, 300)}))


def test_a_report_for_an_object_store_lakehouse_is_uploaded_there_not_left_on_the_worker(tmp_path, monkeypatch):
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    seen = []

    def store(uri: str):
        # The object store, played by a folder: what matters is that the files go through it.
        seen.append(uri)
        return pafs.SubTreeFileSystem(str(bucket), pafs.LocalFileSystem()), uri.split("://", 1)[1]

    monkeypatch.setattr(evidently_report, "arrow_filesystem", store)
    work = tmp_path / "worker"
    work.mkdir()
    monkeypatch.chdir(work)
    ref, cur = frames()
    report = evidently_drift(ref, cur, "s3a://lakehouse/main/reports/drift/trips/2026-01-16", "trips_fare")
    assert report.html_path == "s3a://lakehouse/main/reports/drift/trips/2026-01-16/trips_fare.html"
    assert report.json_path.endswith("/trips_fare.json") and seen
    uploaded = bucket / "lakehouse/main/reports/drift/trips/2026-01-16"
    assert sorted(p.name for p in uploaded.iterdir()) == ["trips_fare.html", "trips_fare.json"]
    assert list(work.iterdir()) == []          # nothing under a folder named "s3a:" in the working directory
    assert report.verdicts["fare"].drifted


def test_a_report_for_a_local_lakehouse_is_written_in_place(tmp_path):
    ref, cur = frames()
    out = tmp_path / "reports" / "drift" / "trips" / "d"
    report = evidently_drift(ref, cur, str(out), "trips_fare")
    assert report.html_path == str(out / "trips_fare.html") and (out / "trips_fare.json").is_file()
