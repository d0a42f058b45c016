"""OpenLineage RunEvents built from Tracelake audit records, with the official client's classes.

One component run is two events: **START** (built from the open record: job, run, parent Dagster
run, nominal time, engine, the table it will write) and one terminal event built from the final
record - **COMPLETE** (succeeded; also skipped, with no output version), **FAIL** (failed, with
the error) or **ABORT** (abandoned, found by reconciliation). Both are pure functions of the
record, so the live publisher and ``tracelake openlineage export`` produce the same events - same
run ids, same times - whether a run is sent as it happens or years later.

What goes where (facet keys as the spec and the Spark integration name them):

| content | facet |
|---|---|
| job = the component, in the configured namespace | ``jobType`` (BATCH / DAGSTER / ASSET), ``ownership`` |
| code | ``sourceCodeLocation`` (git commit, branch); source hash in ``tracelake`` |
| run id: UUIDv7 derived from the Tracelake run id (``ids``) | ``tracelake`` carries the Tracelake id back |
| the Dagster run | ``parent`` (run id = Dagster run id, job ``<namespace>/dagster``) |
| the partition | ``nominalTime`` (start of the partition key, when it is a date or time) |
| Spark version | ``processing_engine`` |
| every input table@version, its schema, the partitions read | ``version``, ``schema``, input ``subset`` |
| every output table@version, schema, rows, bytes, files, partitions | ``version``, ``schema``, |
| | ``outputStatistics``, ``subset`` |
| declared test results | ``dataQualityAssertions`` on the output dataset |
| declared row lineage (``lineage_keys``) | ``columnLineage`` (DIRECT / IDENTITY) on the output |
| models loaded / registered | datasets in namespace ``mlflow``, ``version`` = registry version, ``datasetType`` MODEL |
| the error | ``errorMessage`` (FAIL, and the reason on ABORT) |

The declared tests are evaluated on the rows a run is about to write (write-audit-publish), so
their assertions sit on the *output* dataset's facets; the spec defines the facet class as an
input facet because other producers validate what they read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    error_message_run,
    output_statistics_output_dataset,
    parent_run,
    schema_dataset,
)

from tracelake.lineage.layout import Layout
from tracelake.lineage.openlineage.event_facets import (
    as_dict,
    as_int,
    as_list,
    check_assertion,
    column_lineage_facet,
    engine_facet,
    event_time,
    iso,
    job_type_facet,
    model_type_facet,
    nominal_end,
    nominal_facet,
    nominal_start,
    owners_facet,
    read_subset_facet,
    schema_facet,
    schema_fields,
    source_facet,
    version_facet,
    written_subset_facet,
)
from tracelake.lineage.openlineage.facets import PRODUCER, TracelakeInputFacet, TracelakeRunFacet
from tracelake.lineage.openlineage.ids import is_uuid, openlineage_run_id
from tracelake.lineage.openlineage.naming import MODEL_NAMESPACE, dataset_id
from tracelake.lineage.openlineage.outbox import TERMINAL_EVENT_TYPES

__all__ = ["EventBuilder", "EventContext", "event_type_for", "iso", "schema_fields"]

log = logging.getLogger("tracelake.openlineage")

_TERMINAL = {status: RunState(name) for status, name in TERMINAL_EVENT_TYPES.items()}

SchemaLookup = Callable[[str, int], "str | None"]
_Stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet


def event_type_for(status: str) -> RunState:
    """The terminal event of a final status (``started`` has none)."""
    try:
        return _TERMINAL[status]
    except KeyError:
        raise ValueError(f"a run with status {status!r} has no terminal OpenLineage event") from None


@dataclass
class EventContext:
    """What events need besides the record: where they are published from and how to look up the
    schema of an input table version (``schema_of(path, version)`` -> Delta schema JSON)."""

    layout: Layout
    namespace: str = "tracelake"
    repo_url: str | None = None
    schema_of: SchemaLookup | None = None
    adapter_version: str | None = None
    parent_namespace: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class EventBuilder:
    """Builds the START and terminal RunEvents of component runs (see the module docstring)."""

    def __init__(self, context: EventContext):
        self.ctx = context
        if self.ctx.adapter_version is None:
            from openlineage.client.constants import __version__

            self.ctx.adapter_version = __version__

    # -- the two events ---------------------------------------------------------------------
    def start(self, record: Mapping[str, Any]) -> RunEvent:
        """START, from the fields an open record already has (so live and replayed STARTs agree)."""
        outputs = []
        planned = self._table_id(record.get("output_table"), record.get("output_path"))
        if planned is not None:
            outputs.append(OutputDataset(namespace=planned[0], name=planned[1]))
        return RunEvent(eventType=RunState.START, eventTime=event_time(record["started_at"]), producer=PRODUCER,
                        run=self._run(record, "started"), job=self._job(record), inputs=[], outputs=outputs)

    def end(self, record: Mapping[str, Any], checks: Sequence[Mapping[str, Any]] = ()) -> RunEvent:
        """COMPLETE, FAIL or ABORT with everything the final record knows."""
        status = record["status"]
        state = event_type_for(status)
        run = self._run(record, status)
        if state in (RunState.FAIL, RunState.ABORT) and (record.get("error_message") or record.get("error_type")):
            message = ": ".join(p for p in (record.get("error_type"), record.get("error_message")) if p)
            facets = run.facets if run.facets is not None else {}
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=message, programmingLanguage="python", stackTrace=record.get("error_trace"), producer=PRODUCER)
            run.facets = facets
        return RunEvent(eventType=state, eventTime=event_time(record.get("ended_at") or record["started_at"]),
                        producer=PRODUCER, run=run, job=self._job(record), inputs=self._inputs(record),
                        outputs=self._outputs(record, checks))

    def events(self, record: Mapping[str, Any], checks: Sequence[Mapping[str, Any]] = ()) -> list[RunEvent]:
        """Every event of a recorded run: START, plus the terminal one once the run has ended."""
        out = [self.start(record)]
        if record.get("status") != "started":
            out.append(self.end(record, checks))
        return out

    # -- job and run ------------------------------------------------------------------------
    def _job(self, record: Mapping[str, Any]) -> Job:
        facets: dict[str, Any] = {"jobType": job_type_facet()}
        if record.get("git_commit"):
            facets["sourceCodeLocation"] = source_facet(self.ctx.repo_url, record["git_commit"], record.get("git_branch"))
        if record.get("owner"):
            facets["ownership"] = owners_facet(record["owner"])
        return Job(namespace=self.ctx.namespace, name=record["component"], facets=facets)

    def _run(self, record: Mapping[str, Any], status: str) -> Run:
        libraries = as_dict(record.get("library_versions"))
        facets: dict[str, Any] = {}
        dagster_run = record.get("dagster_run_id")
        if dagster_run and is_uuid(dagster_run):
            job = parent_run.Job(namespace=self.ctx.parent_namespace or self.ctx.namespace, name="dagster")
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=dagster_run), job=job,
                root=parent_run.Root(run=parent_run.RootRun(runId=dagster_run),
                                     job=parent_run.RootJob(namespace=job.namespace, name=job.name)),
                producer=PRODUCER)
        nominal = nominal_start(record.get("partition_key"))
        if nominal:
            facets["nominalTime"] = nominal_facet(nominal, nominal_end(record.get("partition_key")))
        if libraries.get("pyspark"):
            facets["processing_engine"] = engine_facet(libraries["pyspark"], self.ctx.adapter_version)
        metrics = {k: float(v) for k, v in as_dict(record.get("metrics")).items()}
        facets["tracelake"] = TracelakeRunFacet(
            runId=record["run_id"], component=record["component"], status=status,
            partitionKey=record.get("partition_key"), dagsterRunId=dagster_run,
            codeVersion=record.get("code_version"), sourceHash=record.get("source_hash"),
            gitCommit=record.get("git_commit"),
            gitDirty=None if record.get("git_dirty") is None else bool(record.get("git_dirty")),
            mlflowRunId=record.get("mlflow_run_id") if status != "started" else None,
            mlflowRunUrl=record.get("mlflow_run_url") if status != "started" else None,
            metrics=(metrics or None) if status != "started" else None, libraryVersions=libraries or None,
            host=record.get("host"),
            recordHash=record.get("record_hash") if status != "started" else None,
            journalId=record.get("journal_id") if status != "started" else None,
            chainSeq=as_int(record.get("chain_seq")) if status != "started" else None,
            producer=PRODUCER)
        run_id = record.get("openlineage_run_id") or openlineage_run_id(record["run_id"])
        return Run(runId=run_id, facets=facets)

    # -- datasets ---------------------------------------------------------------------------
    def _table_id(self, table: str | None, path: str | None) -> tuple[str, str] | None:
        where = self.ctx.layout.resolve(table, path)
        return dataset_id(where) if where else None

    def _schema(self, path: str, version: int) -> schema_dataset.SchemaDatasetFacet | None:
        if self.ctx.schema_of is None:
            return None
        return schema_facet(self.ctx.schema_of(path, version))

    def _inputs(self, record: Mapping[str, Any]) -> list[InputDataset]:
        """One input dataset per table and version read (a run that read the same table version
        twice - two partition windows - gets one dataset with both windows' partitions)."""
        tables: dict[tuple[str, str, int | None], dict[str, Any]] = {}
        models = []
        for inp in as_list(record.get("inputs")):
            if inp.get("kind") == "model":
                models.append(InputDataset(namespace=MODEL_NAMESPACE, name=inp["name"],
                                           facets=self._model_facets(inp.get("model_version"))))
                continue
            where = self.ctx.layout.resolve(inp.get("name"), inp.get("path")) if inp.get("kind") == "table" \
                else inp.get("path")
            if not where:
                continue
            version = as_int(inp.get("version")) if inp.get("kind") == "table" else None
            entry = tables.setdefault((*dataset_id(where), version), {"where": where, "partitions": [], "missing": [],
                                                                      "whole": False})
            partitions = as_list(inp.get("partitions"))
            entry["whole"] |= not partitions
            entry["partitions"] += [p for p in partitions if p not in entry["partitions"]]
            entry["missing"] += [p for p in as_list(inp.get("missing_partitions")) if p not in entry["missing"]]
        out = []
        for (namespace, name, version), entry in tables.items():
            facets: dict[str, Any] = {}
            input_facets: dict[str, Any] = {}
            if version is not None:
                facets["version"] = version_facet(str(version))
                schema = self._schema(entry["where"], version)
                if schema is not None:
                    facets["schema"] = schema
            if entry["partitions"] and not entry["whole"]:
                input_facets["subset"] = read_subset_facet(tuple(entry["partitions"]))
            if entry["missing"]:
                input_facets["tracelake"] = TracelakeInputFacet(missingPartitions=entry["missing"], producer=PRODUCER)
            out.append(InputDataset(namespace=namespace, name=name, facets=facets, inputFacets=input_facets))
        return out + models

    def _model_facets(self, version: Any) -> dict[str, Any]:
        facets: dict[str, Any] = {"datasetType": model_type_facet()}
        if version is not None:
            facets["version"] = version_facet(str(version))
        return facets

    def _outputs(self, record: Mapping[str, Any], checks: Sequence[Mapping[str, Any]]) -> list[OutputDataset]:
        out = []
        main = self._table_id(record.get("output_table"), record.get("output_path"))
        if main is not None:
            facets: dict[str, Any] = {}
            output_facets: dict[str, Any] = {}
            version = as_int(record.get("output_version"))
            if version is not None:
                facets["version"] = version_facet(str(version))
                output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=as_int(record.get("output_rows")), size=as_int(record.get("output_bytes")),
                    fileCount=as_int(record.get("output_files")), producer=PRODUCER)
                partitions = as_list(record.get("output_partitions"))
                if partitions:
                    output_facets["subset"] = written_subset_facet(tuple(str(p) for p in partitions))
            schema = schema_facet(record.get("output_schema_json"))
            if schema is not None:
                facets["schema"] = schema
            lineage = self._column_lineage(record)
            if lineage is not None:
                facets["columnLineage"] = lineage
            if checks:
                facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=[check_assertion(c) for c in checks], producer=PRODUCER)
            out.append(OutputDataset(namespace=main[0], name=main[1], facets=facets, outputFacets=output_facets))
        out += self._side_outputs(record)
        for model in as_list(record.get("models")):
            if model.get("role") == "registered":
                out.append(OutputDataset(namespace=MODEL_NAMESPACE, name=model["name"],
                                         facets=self._model_facets(model.get("version"))))
        return out

    def _side_outputs(self, record: Mapping[str, Any]) -> list[OutputDataset]:
        """Quarantine and rejected tables at the versions this run committed to them. The record
        keeps their version and row count, not their schema: that comes from the table's log at
        that version, as an input's does (``schema_of``; ``export`` falls back to the log too)."""
        out = []
        for side, rows_field in (("quarantine", "quarantined_rows"), ("rejected", "rejected_rows")):
            table, version = record.get(f"{side}_table"), as_int(record.get(f"{side}_version"))
            if not table or version is None or version < 0:
                continue
            path = self.ctx.layout.table(table)
            namespace, name = dataset_id(path)
            facets: dict[str, Any] = {"version": version_facet(str(version))}
            schema = self._schema(path, version)
            if schema is not None:
                facets["schema"] = schema
            out.append(OutputDataset(
                namespace=namespace, name=name, facets=facets,
                outputFacets={"outputStatistics": _Stats(rowCount=as_int(record.get(rows_field)), producer=PRODUCER)}))
        return out

    def _column_lineage(self, record: Mapping[str, Any]) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
        """Declared lineage keys: output column ``out`` holds input column ``in`` (identity)."""
        raw = record.get("lineage_keys_json")
        if not raw:
            return None
        paths = {i.get("name"): self.ctx.layout.resolve(i.get("name"), i.get("path"))
                 for i in as_list(record.get("inputs")) if i.get("kind") == "table"}
        tables = tuple(sorted((t, paths.get(t) or self.ctx.layout.table(t)) for t in json.loads(raw)))
        return column_lineage_facet(raw, tables)
