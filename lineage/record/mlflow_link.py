"""MLflow, off the critical path: one background thread per tracking store.

Logging a run with tags, params and metrics to a SQLite store costs ~25-30 ms of CPU in four store
calls (create, log_batch, log_inputs, set_terminated); doing it inline on
every materialisation would double the recorder's cost. So run creation is *started* when the
component run begins (it overlaps with the component's own work) and everything else (params,
metrics, datasets, final status) is queued after the audit record is durable.

The link is never lost: the audit record is only finished once the MLflow run id is known, and
the MLflow run carries ``tracelake.run_id`` as a tag, so either side finds the other. If the
process dies before the queue drains, ``tracelake audit reconcile`` completes the MLflow run from
the audit record.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tracelake.lineage.record.redact import redact_mapping, scrub_text
from tracelake.lineage.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

# MlflowResource is resolved by __getattr__ (it needs Dagster, which CLI readers do not import)
__all__ = ["DatasetRef", "MlflowLink", "MlflowResource", "dataset_name", "flatten_params", "link_for"]  # noqa: F822

log = logging.getLogger("tracelake.mlflow")
for noisy in ("alembic", "mlflow.store.db.utils", "mlflow.tracking._tracking_service", "mlflow.store"):
    logging.getLogger(noisy).setLevel(logging.WARNING)

_MAX_PARAM_VALUE = 6000
_STORE_INIT_LOCK = threading.Lock()
# MLflow has no "skipped": a run that had nothing to do must not read as a green FINISHED, so it
# is KILLED with a note saying why (and a tracelake.status tag that says "skipped").
_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "abandoned": "KILLED", "skipped": "KILLED"}


@dataclass(frozen=True)
class DatasetRef:
    name: str
    path: str
    version: int | None
    context: str  # "input" | "training" | "output" ...
    digest: str | None = None
    rows: int | None = None


def dataset_name(ds: DatasetRef) -> str:
    """``cleaned_trips@v14``: a table at one version, as MLflow users will see it."""
    return ds.name if ds.version is None else f"{ds.name}@v{ds.version}"


@dataclass
class _Pending:
    futures: list[Future] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> MLflow params (``a.b.c``), redacted and cut to MLflow's value limit."""
    return _flatten(redact_mapping(dict(config)), prefix)  # redacted once, at the top


def _flatten(config: Mapping[str, Any], prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            text = str(value)
            out[name] = text if len(text) <= _MAX_PARAM_VALUE else text[: _MAX_PARAM_VALUE - 3] + "..."
    return out


class MlflowLink:
    """Process-wide handle on one MLflow tracking store (shared by every component run)."""

    _instances: ClassVar[dict[tuple[str, str, int], MlflowLink]] = {}
    _instances_lock = threading.Lock()

    def __init__(self, tracking_uri: str, ui_url: str, artifact_root: str | None, prefix: str):
        self.tracking_uri = tracking_uri
        self.ui_url = ui_url.rstrip("/")
        self.artifact_root = artifact_root
        self.prefix = prefix
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracelake-mlflow")
        self._client: MlflowClient | None = None
        self._experiments: dict[str, str] = {}
        self._pending = _Pending()
        self._models: dict[str, Any] = {}
        self._models_lock = threading.Lock()
        # The store is created here, in the caller's thread, not on the background thread:
        # creating it runs alembic, whose module-global state is not thread-safe, and Dagster
        # runs alembic too (instance storage). Once created, MLflow caches the store per URI and
        # the background thread only issues queries.
        with _STORE_INIT_LOCK:
            self._init_store()

    @classmethod
    def get(cls, tracking_uri: str, ui_url: str, artifact_root: str | None, prefix: str = "tracelake") -> MlflowLink:
        key = (tracking_uri, prefix, os.getpid())  # a forked child needs its own thread
        with cls._instances_lock:
            link = cls._instances.get(key)
            if link is None:
                link = cls(tracking_uri, ui_url, artifact_root, prefix)
                cls._instances[key] = link
            return link

    # -- background plumbing ---------------------------------------------------------------------
    def _submit(self, fn, *args, **kwargs) -> Future:
        fut = self._executor.submit(fn, *args, **kwargs)
        with self._pending.lock:
            self._pending.futures = [f for f in self._pending.futures if not f.done()] + [fut]
        return fut

    def drain(self, timeout: float | None = 120) -> list[BaseException]:
        """Wait for queued MLflow work; returns the errors it raised (also logged)."""
        with self._pending.lock:
            futures = list(self._pending.futures)
        errors = []
        deadline = None if timeout is None else time.monotonic() + timeout
        for fut in futures:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                fut.result(timeout=remaining)
            except BaseException as exc:  # reported to the caller, never swallowed silently
                errors.append(exc)
        return errors

    def _init_store(self) -> None:
        from mlflow import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        # Against a tracking server MLflow writes "View run ... at: URL" to stdout when a run ends,
        # which breaks `tracelake ... --json` (stdout is the answer); the URL is in the record.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        # MLflow 3 reports usage to its maintainers' servers unless told not to. An audit store
        # sends nothing anywhere unasked; a user who wants it sets MLFLOW_DISABLE_TELEMETRY=false.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        # Creates (or checks) the tracking and registry schemas: a few seconds once for a fresh
        # SQLite store, milliseconds afterwards.
        self._client.search_experiments(max_results=1)
        self._client.search_registered_models(max_results=1)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            raise RuntimeError("the MLflow store was not initialised")
        return self._client

    def _experiment_id(self, component: str) -> str:
        name = f"{self.prefix}/{component}"
        cached = self._experiments.get(name)
        if cached:
            return cached
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            location = None
            if self.artifact_root:
                location = Path(self.artifact_root, component).resolve().as_uri()
            try:
                exp_id = self.client.create_experiment(name, artifact_location=location,
                                                       tags={"tracelake.component": component})
            except Exception:
                # Created by another process between our lookup and create: use theirs.
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
        self._experiments[name] = exp_id
        return exp_id

    def load_model(self, uri: str, flavor: str = "sklearn") -> Any:
        """Load (and cache for the process) a model; registered versions are immutable."""
        with self._models_lock:
            model = self._models.get(uri)
            if model is None:
                import mlflow

                mlflow.set_tracking_uri(self.tracking_uri)
                mlflow.set_registry_uri(self.tracking_uri)
                model = getattr(mlflow, flavor).load_model(uri)
                self._models[uri] = model
            return model

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    # -- the calls the recorder makes -------------------------------------------------------------
    def start_run(self, component: str, run_name: str, tags: Mapping[str, str]) -> Future:
        """Future of ``(experiment_id, mlflow_run_id)``."""

        def create() -> tuple[str, str]:
            exp_id = self._experiment_id(component)
            run = self.client.create_run(exp_id, run_name=run_name,
                                         tags={k: scrub_text(str(v)) for k, v in tags.items() if v is not None})
            return exp_id, run.info.run_id

        return self._submit(create)

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        params: Mapping[str, str],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        datasets: Sequence[DatasetRef],
        end_time_ms: int | None = None,
    ) -> Future:
        def finish() -> None:
            from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

            client = self.client
            now = int(time.time() * 1000)
            param_list = [Param(k, v) for k, v in params.items()]
            metric_list = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None]
            tag_list = [RunTag(k, scrub_text(str(v))) for k, v in tags.items() if v is not None]
            for i in range(0, max(len(param_list), len(metric_list), len(tag_list), 1), 100):
                client.log_batch(run_id, metrics=metric_list[i:i + 100], params=param_list[i:i + 100],
                                 tags=tag_list[i:i + 100])
            inputs = []
            for ds in datasets:
                # The version is in the name, so it shows wherever MLflow lists datasets (the runs
                # table, the run page); the source is MLflow's Delta source JSON, with the version
                # written out even when it is 0 (MLflow's own helper drops a falsy version).
                digest = ds.digest or hashlib.sha256(f"{ds.path}@{ds.version}".encode()).hexdigest()[:16]
                entity = Dataset(name=dataset_name(ds), digest=digest, source_type="delta_table",
                                 source=json.dumps({"path": ds.path, "delta_table_version": ds.version}),
                                 profile=json.dumps({"num_rows": ds.rows}) if ds.rows is not None else None)
                inputs.append(DatasetInput(entity, tags=[
                    InputTag("mlflow.data.context", ds.context),
                    InputTag("tracelake.table", ds.name),
                    InputTag("tracelake.delta_version", str(ds.version)),
                ]))
            if inputs:
                client.log_inputs(run_id, datasets=inputs)
            client.set_terminated(run_id, status=_STATUS.get(status, "FINISHED"), end_time=end_time_ms or now)

        return self._submit(finish)

    def find_run(self, tracelake_run_id: str) -> tuple[str, str] | None:
        """(experiment_id, mlflow_run_id) of the MLflow run tagged with this component run id."""
        exps = [e.experiment_id for e in self.client.search_experiments(filter_string=f"name LIKE '{self.prefix}/%'")]
        if not exps:
            return None
        runs = self.client.search_runs(exps, filter_string=f"tags.`tracelake.run_id` = '{tracelake_run_id}'", max_results=1)
        return (runs[0].info.experiment_id, runs[0].info.run_id) if runs else None


def _drain_all_at_exit() -> None:
    for link in list(MlflowLink._instances.values()):
        for exc in link.drain(timeout=60):
            log.error("MLflow logging failed while the process exited: %s", scrub_text(str(exc)))


atexit.register(_drain_all_at_exit)


def link_for(settings: Settings, prefix: str = "tracelake") -> MlflowLink:
    artifact_root = None
    if settings.mlflow_tracking_uri.startswith("sqlite:"):
        artifact_root = str(Path(settings.mlflow_tracking_uri[len("sqlite:///"):]).parent / "artifacts")
    return MlflowLink.get(settings.mlflow_tracking_uri, settings.mlflow_ui_url, artifact_root, prefix)


def __getattr__(name: str) -> Any:
    """``MlflowResource`` lives in ``mlflow_resource`` (it needs Dagster): importing this module -
    which every process that records or reads the audit does - must not import Dagster, so a
    ``tracelake trace`` process starts without it."""
    if name == "MlflowResource":
        from tracelake.lineage.record.mlflow_resource import MlflowResource

        return MlflowResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
