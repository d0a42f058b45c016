"""The lakehouse runtime: settings, layout, journal, audit store, recorder - built once per process.

``open_lakehouse()`` is the entry point for Python and the CLI; ``LakehouseResource`` (resource
key ``lakehouse``) is the same thing for Dagster. Both share one cached instance per lakehouse
root and process, so the journal connection, MLflow thread and Spark session are reused.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracelake.lineage.layout import Layout
from tracelake.lineage.record.anchors import anchor_store
from tracelake.lineage.record.audit_store import AuditStore
from tracelake.lineage.record.journal import Journal, open_journal
from tracelake.lineage.record.listeners import RunListener
from tracelake.lineage.settings import Settings, is_local_uri, load_settings, to_local_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from tracelake.lineage.record.mlflow_link import MlflowLink
    from tracelake.lineage.record.mlflow_resource import MlflowResource
    from tracelake.lineage.record.recorder import Recorder
    from tracelake.lineage.spark import SparkResource

# Dagster, Spark and the recorder are imported where they are used, not here: every CLI process
# imports this module, and the ones that only read the audit (trace, impact, runs ...) must start
# without paying for them (Dagster alone is ~1 s of CPU). LakehouseResource (which needs Dagster)
# lives in lakehouse_resource and is still importable from here (module __getattr__ below).

__all__ = [
    "Lakehouse",
    "LakehouseResource",  # noqa: F822 - resolved by __getattr__ (it needs Dagster)
    "NotALakehouse",
    "forget_lakehouse",
    "lakehouse_exists",
    "open_lakehouse",
]

_cache: dict[tuple, Lakehouse] = {}
_cache_lock = threading.Lock()


@dataclass
class Lakehouse:
    settings: Settings
    layout: Layout
    journal: Journal
    store: AuditStore
    spark_resource: SparkResource | None = None
    mlflow_resource: MlflowResource | None = None
    digest_files: bool = True
    # Told when runs open and end (after the audit record is durable); see record.listeners.
    listeners: list[RunListener] = field(default_factory=list)
    _recorder: Recorder | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def spark(self) -> SparkSession:
        from tracelake.lineage.spark import ensure_retention, get_spark

        session = self.spark_resource.get_session() if self.spark_resource is not None else get_spark(self.settings)
        return ensure_retention(session, self.settings.retention_interval)

    @property
    def mlflow(self) -> MlflowLink:
        if self.mlflow_resource is not None:
            return self.mlflow_resource.link(default_home=self.settings.home)
        from tracelake.lineage.record.mlflow_link import link_for

        return link_for(self.settings)

    @property
    def recorder(self) -> Recorder:
        from tracelake.lineage.record.recorder import Recorder

        with self._lock:
            if self._recorder is None:
                self._recorder = Recorder(layout=self.layout, store=self.store, mlflow=self.mlflow,
                                          spark_provider=self.spark, digest_files=self.digest_files,
                                          listeners=self.listeners)
            return self._recorder

    def flush(self) -> dict[str, int]:
        """Drain queued MLflow work, then write every journaled audit record to Delta."""
        if self._recorder is not None:
            for exc in self._recorder.mlflow.drain():
                raise RuntimeError(f"MLflow logging failed: {exc}") from exc
        return self.store.flush()


class NotALakehouse(ValueError):
    """A root that holds no lakehouse (a typo in --home, a file, an empty folder)."""


def lakehouse_exists(settings: Settings) -> bool:
    """Does ``settings.home`` hold a lakehouse (tables, audit tables or a journal)? Object stores
    are taken at their word: listing a bucket to prove it costs a round trip per command."""
    if not is_local_uri(settings.home):
        return True
    root = to_local_path(settings.home)
    return root.is_dir() and ((root / "tables").is_dir() or (root / "audit").is_dir()
                              or (Path(settings.journal_dir) / "journal.sqlite").exists())


def open_lakehouse(home: str | None = None, *, spark: SparkResource | None = None,
                   mlflow: MlflowResource | None = None, digest_files: bool = True, must_exist: bool = False,
                   **overrides: Any) -> Lakehouse:
    """The process's :class:`Lakehouse` for ``home`` (default ``TRACELAKE_HOME``).

    ``must_exist``: refuse a root that holds no lakehouse instead of starting an empty one there
    (what every question asked from the CLI wants: a typo must not answer "nothing recorded")."""
    settings = load_settings(home=home, **overrides)
    if must_exist and not lakehouse_exists(settings):
        root = to_local_path(settings.home)
        what = "is a file" if root.is_file() else "does not exist" if not root.exists() else "holds no lakehouse"
        raise NotALakehouse(f"{settings.home} {what} (no tables/, audit/ or journal); check --home or "
                            "TRACELAKE_HOME, or run `tracelake demo` to create one")
    key = (settings, os.getpid())
    with _cache_lock:
        lake = _cache.get(key)
        if lake is None:
            layout = Layout.from_settings(settings)
            _warn_if_journal_is_local_to_a_remote_lake(settings)
            anchors = anchor_store(settings.home, settings.anchor_dir)
            journal = open_journal(settings.journal_dir, settings.journal_url, settings.home, on_commit=anchors.note)
            store = AuditStore(layout, journal, settings.retention_interval)
            lake = Lakehouse(settings, layout, journal, store)
            # OpenLineage publishing, by configuration only (TRACELAKE_OPENLINEAGE, default on).
            from tracelake.lineage.openlineage.publisher import publisher_for

            lake.listeners.extend(publisher_for(settings, store))
            _cache[key] = lake
        # Dagster hands each run fresh resource objects with the same configuration.
        lake.spark_resource = spark or lake.spark_resource
        lake.mlflow_resource = mlflow or lake.mlflow_resource
        lake.digest_files = digest_files
        if lake._recorder is not None:
            lake._recorder.digest_files = digest_files
        return lake


def forget_lakehouse(home: str | None = None) -> None:
    """Drop this process's cached :class:`Lakehouse` of ``home`` (its journal connection, its
    caches): the next ``open_lakehouse`` reads the files again - after a restore replaced them."""
    root = load_settings(home=home).home
    with _cache_lock:
        for key in [k for k, lake in _cache.items() if lake.settings.home == root]:
            _cache.pop(key)


def __getattr__(name: str) -> Any:
    """``LakehouseResource`` is defined in ``lakehouse_resource`` (it needs Dagster; see above)."""
    if name == "LakehouseResource":
        from tracelake.lineage.lakehouse_resource import LakehouseResource

        return LakehouseResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _warn_if_journal_is_local_to_a_remote_lake(settings: Settings) -> None:
    """A lakehouse on an object store with the default journal (SQLite on this machine's disk)
    works for one machine, but its records live only as long as this disk and writers on other
    machines are not serialised per table - said once per process, not discovered after a loss."""
    if is_local_uri(settings.home) or settings.journal_url:
        return
    logging.getLogger("tracelake.lakehouse").warning(
        "the lakehouse %s is on an object store but the audit journal is on this machine's disk (%s): "
        "records not yet flushed are lost with this disk, and writers on other machines are not locked "
        "per table; set TRACELAKE_JOURNAL_URL=postgresql://... for a shared setup (docs/scaling.md)",
        settings.home, settings.journal_dir)
