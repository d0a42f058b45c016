"""Resource key ``lakehouse`` - the Dagster side of ``lakehouse``.

Kept apart from ``lakehouse`` because it needs Dagster, and the processes that only read the
audit (``tracelake trace``, ``impact`` ...) should not pay Dagster's import (~1 s of CPU).
``lakehouse.LakehouseResource`` still resolves here.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import dagster as dg
from pydantic import Field

from tracelake.lineage.lakehouse import Lakehouse, open_lakehouse
from tracelake.lineage.record.mlflow_resource import MlflowResource
from tracelake.lineage.spark import SparkResource

__all__ = ["LakehouseResource"]


class LakehouseResource(dg.ConfigurableResource):
    """Resource key ``lakehouse``: the lakehouse root, its audit store and the recorder.

    Every ``@component`` asks for it. Unset fields come from the environment (TRACELAKE_HOME,
    TRACELAKE_RETENTION_DAYS, TRACELAKE_JOURNAL_DIR), so one definition runs locally and in
    production unchanged.
    """

    # Recorded with each run (lineage/record/config_record.py); spark and mlflow by their own lists.
    tracelake_recorded_fields: ClassVar[tuple[str, ...]] = (
        "home", "retention_days", "journal_dir", "digest_files", "flush_records", "flush_seconds", "spark", "mlflow")

    home: str | None = Field(default=None, description="lakehouse root; default TRACELAKE_HOME or ./lakehouse")
    retention_days: int | None = Field(default=None, description="history kept on every table; default 2555 (7 years)")
    journal_dir: str | None = Field(default=None, description="durable audit journal; default <home>/_journal")
    # Not recorded with runs: the URL may carry a password (bind it with dg.EnvVar).
    journal_url: str | None = Field(default=None, description="journal in PostgreSQL; default TRACELAKE_JOURNAL_URL "
                                                              "or none (the SQLite journal in journal_dir)")
    digest_files: bool = Field(default=True, description="hash the bytes of every written file (retention proofs)")
    flush_records: int | None = Field(default=None, description="flush the journal to Delta at this many records")
    flush_seconds: int | None = Field(default=None, description="... or when the oldest record is this old")
    spark: SparkResource = Field(default_factory=SparkResource)
    mlflow: MlflowResource = Field(default_factory=MlflowResource)

    def open(self) -> Lakehouse:
        return open_lakehouse(
            self.home, spark=self.spark, mlflow=self.mlflow, digest_files=self.digest_files,
            retention_days=self.retention_days, journal_dir=self.journal_dir, journal_url=self.journal_url,
            flush_records=self.flush_records, flush_seconds=self.flush_seconds,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # Flush in batches: the journal already made every record durable, and one Delta commit
        # per record would cost more than the recording itself.
        lake = self.open()
        try:
            lake.store.flush_if_due(lake.settings.flush_records, lake.settings.flush_seconds)
        except Exception as exc:  # the records are durable in the journal: said, root cause first, not lost
            from tracelake.lineage.record.errors_text import error_message

            message = (f"audit flush failed: {error_message(exc)}; every record is safe in the journal "
                       f"({lake.journal.path}) and is written by the next flush (`tracelake audit flush`)")
            (context.log if context.log is not None else logging.getLogger("tracelake.audit")).error(message)
