"""One component run as user code sees it (``run: ComponentRun`` / ``current_run()``), and the
records it leaves: what was read, what was written, metrics, models, timings.

The object is filled in as the materialisation proceeds (see ``materialisation``); the
recorder turns it into the audit record at the start (open marker) and at the end.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tracelake.lineage.record.redact import scrub_text
from tracelake.lineage.record.runid import new_run_id

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from tracelake.lineage.record.recorder import Recorder

__all__ = ["ComponentRun", "OutputRecord", "RunTimings", "current_run"]

_current: contextvars.ContextVar[ComponentRun | None] = contextvars.ContextVar("tracelake_current_run", default=None)
_MLFLOW_WAIT_S = 300.0


def current_run() -> ComponentRun:
    """The component run executing in this thread (inside a ``@component`` body)."""
    run = _current.get()
    if run is None:
        raise RuntimeError("no Tracelake component run is active here; call this inside a @component function")
    return run


@dataclass
class RunTimings:
    """Where the recorder's own time went (milliseconds), for the overhead benchmark."""

    audit_ms: float = 0.0      # journal writes
    lineage_ms: float = 0.0    # version pinning, commit lookup, digests, schema hash
    mlflow_ms: float = 0.0     # time spent waiting for MLflow on the critical path
    checks_ms: float = 0.0     # declared tests (one Spark pass) and recording their results

    def add(self, name: str, started: float) -> None:
        setattr(self, name, getattr(self, name) + (time.perf_counter() - started) * 1000)


@dataclass
class OutputRecord:
    """One Delta commit a run made: where, which version, what it holds."""

    table: str
    path: str
    version: int
    rows: int | None
    files: int
    bytes: int
    partitions: list[str] | None
    schema_hash: str
    schema_json: str
    content_digest: str
    write_mode: str
    schema: Any = None  # pyspark StructType of what was written (for Dagster metadata)
    added_files: list[dict[str, Any]] | None = None  # the commit's add actions (delta_meta.added_files)


@dataclass
class ComponentRun:
    """One materialisation of one component. User code gets it as ``run`` / ``current_run()``."""

    recorder: Recorder
    run_id: str
    component: str
    asset_key: str
    partition_key: str | None
    partition_keys: list[str] | None
    dagster_run_id: str | None
    code_version: str | None
    source_hash: str | None
    source_path: str | None
    owner: str | None
    tags: dict[str, str]
    config: dict[str, Any]
    started_at: datetime
    lineage_keys: dict[str, list[str]] | None = None
    planned_table: str | None = None  # where the output will go; lets reconciliation find a landed commit
    planned_mode: str | None = None   # how it will be written; lets reconciliation roll a landed commit back
    inputs: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    extra_tags: dict[str, str] = field(default_factory=dict)
    output_metadata: dict[str, Any] = field(default_factory=dict)  # extra Dagster metadata (e.g. report links)
    timings: RunTimings = field(default_factory=RunTimings)
    output: OutputRecord | None = None
    quarantine: OutputRecord | None = None
    rejected: OutputRecord | None = None   # a batch a blocking test refused, kept aside
    rolled_back_version: int | None = None  # the commit that took a failed run's rows back out
    status: str = "started"
    _mlflow: Any = None  # Future[(experiment_id, run_id)]
    _token: Any = None

    # -- user API ----------------------------------------------------------------------------
    def log_metric(self, name: str, value: float) -> None:
        self.metrics[str(name)] = float(value)

    def log_metrics(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.log_metric(k, v)

    def log_window_metrics(self, rows: Sequence[Mapping[str, Any]], *, component: str | None = None,
                           source: str = "component") -> None:
        """Metrics over a time window and slice (e.g. recall of one day's predictions for one
        zone), chained into ``audit.metrics`` with this run's id. ``component`` names what the
        metric is about when it is not this component (an evaluation scores the predictions)."""
        now = datetime.now(UTC)
        self.recorder.record_metrics([{
            "metric_id": new_run_id(), "run_id": self.run_id, "component": component or self.component,
            "partition_key": self.partition_key, "source": source, "computed_at": now, **dict(r)} for r in rows])

    def set_tag(self, key: str, value: Any) -> None:
        self.extra_tags[str(key)] = scrub_text(str(value))

    @property
    def spark(self) -> SparkSession:
        return self.recorder.spark()

    def _mlflow_ids(self) -> tuple[str, str]:
        started = time.perf_counter()
        try:
            return self._mlflow.result(timeout=_MLFLOW_WAIT_S)
        finally:
            self.timings.add("mlflow_ms", started)

    @property
    def mlflow_run_id(self) -> str:
        return self._mlflow_ids()[1]

    @property
    def mlflow_run_url(self) -> str:
        exp_id, run_id = self._mlflow_ids()
        return self.recorder.mlflow.run_url(exp_id, run_id)

    def read_table(self, name: str, *, partitions: Sequence[str] | None = None, version: int | None = None,
                   path: str | None = None) -> DataFrame:
        """Read another lakehouse table, pinned and recorded as an input of this run."""
        return self.recorder.read_input(self, name, partitions=partitions, version=version, path=path)

    def log_model(self, model: Any, registered_name: str, *, flavor: str = "sklearn",
                  input_example: Any = None, **kwargs: Any) -> dict[str, str]:
        """Log ``model`` into this run's MLflow run and register it; the version is recorded."""
        import mlflow

        link = self.recorder.mlflow
        mlflow.set_tracking_uri(link.tracking_uri)
        mlflow.set_registry_uri(link.tracking_uri)
        flavor_module = getattr(mlflow, flavor)
        with mlflow.start_run(run_id=self.mlflow_run_id):
            info = flavor_module.log_model(model, name="model", input_example=input_example, **kwargs)
        version = self._register(registered_name, info.model_uri, model_id=getattr(info, "model_id", None))
        ref = {"role": "registered", "name": registered_name, "version": version,
               "uri": f"models:/{registered_name}/{version}", "mlflow_run_id": self.mlflow_run_id}
        self.models.append(ref)
        self._describe_model_version(registered_name, version)
        return ref

    def _register(self, name: str, model_uri: str, model_id: str | None = None) -> str:
        """Register the logged model as a new version of ``name`` through the client, which says
        nothing on stderr (``registered_model_name=`` prints two lines into every run's output).
        ``model_id`` names the logged model a ``models:/m-...`` source points at: an MLflow tracking
        server refuses the registration without it (the embedded SQLite store does not check)."""
        from mlflow.exceptions import MlflowException

        client = self.recorder.mlflow.client
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":   # another run registered it first: fine
                raise
        return str(client.create_model_version(name, model_uri, run_id=self.mlflow_run_id, model_id=model_id).version)

    def _describe_model_version(self, name: str, version: str) -> None:
        """Tags and a description on the registered version that say what it learned from, so the
        registry page answers "which data?" without leaving MLflow."""
        data = [f"{i['name']}@v{i['version']}" for i in self.inputs if i["kind"] == "table"]
        client = self.recorder.mlflow.client
        tags = {"tracelake.run_id": self.run_id, "tracelake.component": self.component,
                "tracelake.training_data": ", ".join(data), "tracelake.code_version": str(self.code_version),
                "tracelake.partition": str(self.partition_key)}
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        client.update_model_version(name, version, description=(
            f"Trained by Tracelake run {self.run_id} ({self.component} {self.partition_key or ''}) on "
            f"{', '.join(data) or 'no recorded table'}. Full record: `tracelake run show {self.run_id}`."))

    def load_model(self, name: str, version: str | int, *, flavor: str = "sklearn") -> Any:
        """Load a registered model version; the version (and its MLflow run) is recorded as an input."""
        return self.recorder.load_model(self, name, str(version), flavor=flavor)

    # -- used by the decorator ------------------------------------------------------------------
    def activate(self) -> None:
        self._token = _current.set(self)

    def deactivate(self) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
