"""Tracelake's own OpenLineage facets: what the standard facets have no field for.

Custom facets are allowed by the spec (any key, with ``_producer`` and ``_schemaURL``); backends
that do not know them store and show them as JSON. The standard facets carry everything they can
(versions, schemas, statistics, assertions, errors, parent, nominal time, engine, source); these
add the audit identity of the run - the Tracelake run id and the hash of its chained audit record,
so an event can be checked against the tamper-evident record it was built from - and the few
fields with no standard home (source hash, Dagster partition, MLflow run, missing partitions).
"""

from __future__ import annotations

from importlib import metadata

import attr
from openlineage.client.facet_v2 import InputDatasetFacet, RunFacet

__all__ = ["PRODUCER", "SCHEMA_BASE", "TracelakeInputFacet", "TracelakeRunFacet", "tracelake_version"]


def tracelake_version() -> str:
    try:
        return metadata.version("tracelake")
    except metadata.PackageNotFoundError:
        return "0+unknown"


# The producer URI on every event and facet (OpenLineage asks for the producing software's URI).
PRODUCER = f"https://github.com/tracelake/tracelake/tree/v{tracelake_version()}/lineage/openlineage"
SCHEMA_BASE = "https://github.com/tracelake/tracelake/blob/main/docs/openlineage.md"


@attr.define
class TracelakeRunFacet(RunFacet):
    """The Tracelake audit record behind the event (facet key ``tracelake``)."""

    runId: str
    component: str
    status: str
    partitionKey: str | None = attr.field(default=None)
    dagsterRunId: str | None = attr.field(default=None)
    codeVersion: str | None = attr.field(default=None)
    sourceHash: str | None = attr.field(default=None)
    gitCommit: str | None = attr.field(default=None)
    gitDirty: bool | None = attr.field(default=None)
    mlflowRunId: str | None = attr.field(default=None)
    mlflowRunUrl: str | None = attr.field(default=None)
    metrics: dict[str, float] | None = attr.field(default=None)
    libraryVersions: dict[str, str] | None = attr.field(default=None)
    host: str | None = attr.field(default=None)
    recordHash: str | None = attr.field(default=None)
    journalId: str | None = attr.field(default=None)
    chainSeq: int | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_BASE}#tracelake-run-facet"


@attr.define
class TracelakeInputFacet(InputDatasetFacet):
    """Partitions a run asked for that were not there (facet key ``tracelake``)."""

    missingPartitions: list[str] | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_BASE}#tracelake-input-facet"
