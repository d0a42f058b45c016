"""Reports and models land in the object store: Evidently's drift reports (not in a local folder
named ``s3a:``) and MLflow's logged models.

The reference pipeline's simulated days stop before the first model (so before any daily drift
run), which is how reports written to ``./s3a:/lakehouse/...`` on the worker's disk went unseen.
This calls the drift asset's report writer, ``evidently_drift``, with an ``s3a://`` folder of
the cluster's lakehouse and reads the uploaded objects back from SeaweedFS; and logs a model the
way training does through the cluster's MLflow server and finds its files in the bucket.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.cluster


def test_evidently_reports_are_uploaded_to_the_object_store(cluster, tmp_path: Path, monkeypatch):
    from pyarrow import fs as pafs

    from tracelake.lineage.settings import arrow_filesystem
    from tracelake.monitors.drift.evidently_report import evidently_drift

    monkeypatch.chdir(tmp_path)   # a relative "s3a:" folder would appear here
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"fare": rng.normal(10, 2, 400), "zone": rng.choice(["a", "b"], 400),
                              "airport": rng.choice([True, False], 400)})
    current = pd.DataFrame({"fare": rng.normal(16, 2, 400), "zone": rng.choice(["a", "b"], 400),
                            "airport": rng.choice([True, False], 400)})
    out_dir = f"{cluster.new_home('drift-report')}/reports/drift/trip_features/2026-01-09"
    report = evidently_drift(reference, current, out_dir, "evidently")

    assert report.html_path == f"{out_dir}/evidently.html" and report.json_path == f"{out_dir}/evidently.json"
    assert not list(tmp_path.iterdir()), f"nothing written to the local disk: {list(tmp_path.iterdir())}"
    filesystem, prefix = arrow_filesystem(out_dir)
    infos = {Path(i.path).name: i for i in filesystem.get_file_info(pafs.FileSelector(prefix))}
    assert set(infos) == {"evidently.html", "evidently.json"}, infos
    assert all(i.type == pafs.FileType.File and i.size > 0 for i in infos.values())
    with filesystem.open_input_stream(arrow_filesystem(report.json_path)[1]) as fh:
        snapshot = json.loads(fh.read())
    assert report.verdicts["fare"].drifted, "the shifted column drifted"
    assert any((m.get("config") or {}).get("column") == "fare" for m in snapshot.get("metrics", [])), \
        "the uploaded snapshot is the report's"



@pytest.fixture
def logged_model(cluster):
    """A small sklearn model logged as training logs it (``mlflow.sklearn.log_model``, name "model")
    into a fresh experiment of the cluster's MLflow server: (client, experiment id, run id, model info)."""
    import uuid

    import mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    uri = cluster.env["MLFLOW_TRACKING_URI"]
    previous = mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    model = LinearRegression().fit(np.arange(20.0).reshape(-1, 1), np.arange(20.0) * 2)
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        experiment = client.create_experiment(f"cluster-test-{uuid.uuid4().hex[:8]}")
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.sklearn.log_model(model, name="model")
        yield client, experiment, run.info.run_id, info
    finally:
        mlflow.set_tracking_uri(previous)


def test_a_logged_model_is_stored_in_the_object_store(logged_model):
    import mlflow
    from pyarrow import fs as pafs

    from tracelake.lineage.settings import arrow_filesystem

    _, experiment, _, info = logged_model
    filesystem, prefix = arrow_filesystem(f"s3://mlflow/artifacts/{experiment}")
    files = {Path(i.path).name: i.size for i in filesystem.get_file_info(pafs.FileSelector(prefix, recursive=True))
             if i.type == pafs.FileType.File}
    assert "MLmodel" in files and any(n.startswith("model.") and size > 0 for n, size in files.items()), sorted(files)
    loaded = mlflow.sklearn.load_model(info.model_uri)
    assert loaded.predict([[3.0]])[0] == pytest.approx(6.0)


def test_training_registers_its_model_on_the_mlflow_server(logged_model):
    """Training's registration call (``ComponentRun.log_model`` -> ``_register``) against the server,
    which - unlike the embedded SQLite store - refuses a ``models:/m-...`` source without its model id."""
    from types import SimpleNamespace

    from tracelake.lineage.record.run import ComponentRun

    client, _, run_id, info = logged_model
    name = f"cluster-test-model-{run_id[:8]}"
    run = SimpleNamespace(recorder=SimpleNamespace(mlflow=SimpleNamespace(client=client)), mlflow_run_id=run_id)
    version = ComponentRun._register(run, name, info.model_uri, model_id=info.model_id)   # type: ignore[arg-type]
    assert client.get_model_version(name, version).run_id == run_id
