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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    base_subset_dataset,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    dataset_type_dataset,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    ownership_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
    source_code_location_job,
)

from tracelake.lineage.layout import PARTITION_COLUMN, Layout
from tracelake.lineage.openlineage.facets import PRODUCER, TracelakeInputFacet, TracelakeRunFacet
from tracelake.lineage.openlineage.ids import is_uuid, openlineage_run_id
from tracelake.lineage.openlineage.naming import MODEL_NAMESPACE, dataset_id

__all__ = ["EventBuilder", "EventContext", "event_type_for", "iso", "schema_fields"]

log = logging.getLogger("tracelake.openlineage")

_TERMINAL = {"succeeded": RunState.COMPLETE, "skipped": RunState.COMPLETE, "failed": RunState.FAIL,
             "abandoned": RunState.ABORT}

SchemaLookup = Callable[[str, int], "str | None"]
_Stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet


def event_type_for(status: str) -> RunState:
    """The terminal event of a final status (``started`` has none)."""
    try:
        return _TERMINAL[status]
    except KeyError:
        raise ValueError(f"a run with status {status!r} has no terminal OpenLineage event") from None


def _when(value: Any) -> str:
    text = iso(value)
    if text is None:
        raise ValueError("a run event needs a time; the record has none")
    return text


def iso(value: Any) -> str | None:
    """A recorded time as an ISO-8601 UTC string with a 'T' (what the spec asks for)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "to_pydatetime"):   # pandas Timestamp
        if value != value:                 # NaT
            return None
        value = value.to_pydatetime()
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    raise TypeError(f"not a time: {value!r}")


def _mapping(value: Any) -> dict[str, Any]:
    """Arrow maps read back as lists of pairs (or dicts, from pandas): always a dict."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return dict(value)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value)


def _int(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return int(value)


def _type_name(delta_type: Any) -> tuple[str, list[schema_dataset.SchemaDatasetFacetFields]]:
    """(type text, nested fields) of a Delta schema type (a name, or a struct/array/map object)."""
    if isinstance(delta_type, str):
        return delta_type, []
    kind = delta_type.get("type")
    if kind == "struct":
        return "struct", schema_fields(delta_type.get("fields", []))
    if kind == "array":
        inner, nested = _type_name(delta_type.get("elementType"))
        return f"array<{inner}>", nested
    if kind == "map":
        return f"map<{_type_name(delta_type.get('keyType'))[0]},{_type_name(delta_type.get('valueType'))[0]}>", []
    return str(kind), []


def schema_fields(fields: Iterable[Mapping[str, Any]]) -> list[schema_dataset.SchemaDatasetFacetFields]:
    out = []
    for i, f in enumerate(fields):
        type_text, nested = _type_name(f.get("type"))
        out.append(schema_dataset.SchemaDatasetFacetFields(name=f["name"], type=type_text, ordinal_position=i + 1,
                                                           fields=nested))
    return out


# Facets that are the same for many events are built once and shared (they are never mutated):
# the client's classes validate their URIs on construction, which is most of an event's cost.
@lru_cache(maxsize=1)
def _job_type() -> job_type_job.JobTypeJobFacet:
    return job_type_job.JobTypeJobFacet(processingType="BATCH", integration="DAGSTER", jobType="ASSET",
                                        producer=PRODUCER)


@lru_cache(maxsize=4096)
def _version(version: str) -> dataset_version_dataset.DatasetVersionDatasetFacet:
    return dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version, producer=PRODUCER)


@lru_cache(maxsize=1)
def _model_type() -> dataset_type_dataset.DatasetTypeDatasetFacet:
    return dataset_type_dataset.DatasetTypeDatasetFacet(datasetType="MODEL", producer=PRODUCER)


@lru_cache(maxsize=256)
def _source(url: str | None, commit: str, branch: str | None) -> source_code_location_job.SourceCodeLocationJobFacet:
    return source_code_location_job.SourceCodeLocationJobFacet(type="git", url=url or "unknown", repoUrl=url,
                                                               version=commit, branch=branch, producer=PRODUCER)


@lru_cache(maxsize=256)
def _owners(owner: str) -> ownership_job.OwnershipJobFacet:
    return ownership_job.OwnershipJobFacet(owners=[ownership_job.Owner(name=owner)], producer=PRODUCER)


@lru_cache(maxsize=64)
def _engine(version: str, adapter: str | None) -> processing_engine_run.ProcessingEngineRunFacet:
    return processing_engine_run.ProcessingEngineRunFacet(version=version, name="spark",
                                                          openlineageAdapterVersion=adapter, producer=PRODUCER)


@lru_cache(maxsize=1024)
def _nominal(start: str, end: str | None) -> nominal_time_run.NominalTimeRunFacet:
    return nominal_time_run.NominalTimeRunFacet(nominalStartTime=start, nominalEndTime=end, producer=PRODUCER)


@lru_cache(maxsize=4096)
def _schema_facet(schema_json: str | None) -> schema_dataset.SchemaDatasetFacet | None:
    """A Delta schema (``{"type": "struct", "fields": [...]}``) or the recorder's canonical field
    list (``[{"name", "type", "nullable"}]``) as a schema facet."""
    if not schema_json:
        return None
    parsed = json.loads(schema_json)
    fields = parsed.get("fields", []) if isinstance(parsed, dict) else parsed
    return schema_dataset.SchemaDatasetFacet(fields=schema_fields(fields), producer=PRODUCER)


def _nominal_start(partition_key: str | None) -> str | None:
    """The instant a partition key stands for: a date, a Dagster hourly key or an ISO time
    (ranges ``a...b`` start at ``a``); None for keys that are not times."""
    if not partition_key:
        return None
    first = partition_key.split("...")[0]
    for fmt in ("%Y-%m-%d-%H:%M", "%Y-%m-%d"):
        try:
            return iso(datetime.strptime(first, fmt).replace(tzinfo=UTC))
        except ValueError:
            continue
    try:
        return iso(datetime.fromisoformat(first))
    except ValueError:
        return None


def _nominal_end(partition_key: str | None) -> str | None:
    """Only a range ``a...b`` of daily keys says where it ends (the day after ``b``); a single
    key does not say its cadence, so the end is left out rather than guessed."""
    if not partition_key or "..." not in partition_key:
        return None
    last = partition_key.split("...")[-1]
    try:
        return iso(datetime.combine(date.fromisoformat(last) + timedelta(days=1), datetime.min.time(), UTC))
    except ValueError:
        return None


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
        return RunEvent(eventType=RunState.START, eventTime=_when(record["started_at"]), producer=PRODUCER,
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
        return RunEvent(eventType=state, eventTime=_when(record.get("ended_at") or record["started_at"]),
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
        facets: dict[str, Any] = {"jobType": _job_type()}
        if record.get("git_commit"):
            facets["sourceCodeLocation"] = _source(self.ctx.repo_url, record["git_commit"], record.get("git_branch"))
        if record.get("owner"):
            facets["ownership"] = _owners(record["owner"])
        return Job(namespace=self.ctx.namespace, name=record["component"], facets=facets)

    def _run(self, record: Mapping[str, Any], status: str) -> Run:
        libraries = _mapping(record.get("library_versions"))
        facets: dict[str, Any] = {}
        dagster_run = record.get("dagster_run_id")
        if dagster_run and is_uuid(dagster_run):
            job = parent_run.Job(namespace=self.ctx.parent_namespace or self.ctx.namespace, name="dagster")
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=dagster_run), job=job,
                root=parent_run.Root(run=parent_run.RootRun(runId=dagster_run),
                                     job=parent_run.RootJob(namespace=job.namespace, name=job.name)),
                producer=PRODUCER)
        nominal = _nominal_start(record.get("partition_key"))
        if nominal:
            facets["nominalTime"] = _nominal(nominal, _nominal_end(record.get("partition_key")))
        if libraries.get("pyspark"):
            facets["processing_engine"] = _engine(libraries["pyspark"], self.ctx.adapter_version)
        metrics = {k: float(v) for k, v in _mapping(record.get("metrics")).items()}
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
            chainSeq=_int(record.get("chain_seq")) if status != "started" else None,
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
        return _schema_facet(self.ctx.schema_of(path, version))

    def _inputs(self, record: Mapping[str, Any]) -> list[InputDataset]:
        """One input dataset per table and version read (a run that read the same table version
        twice - two partition windows - gets one dataset with both windows' partitions)."""
        tables: dict[tuple[str, str, int | None], dict[str, Any]] = {}
        models = []
        for inp in _list(record.get("inputs")):
            if inp.get("kind") == "model":
                models.append(InputDataset(namespace=MODEL_NAMESPACE, name=inp["name"],
                                           facets=self._model_facets(inp.get("model_version"))))
                continue
            where = self.ctx.layout.resolve(inp.get("name"), inp.get("path")) if inp.get("kind") == "table" \
                else inp.get("path")
            if not where:
                continue
            version = _int(inp.get("version")) if inp.get("kind") == "table" else None
            entry = tables.setdefault((*dataset_id(where), version), {"where": where, "partitions": [], "missing": [],
                                                                      "whole": False})
            partitions = _list(inp.get("partitions"))
            entry["whole"] |= not partitions
            entry["partitions"] += [p for p in partitions if p not in entry["partitions"]]
            entry["missing"] += [p for p in _list(inp.get("missing_partitions")) if p not in entry["missing"]]
        out = []
        for (namespace, name, version), entry in tables.items():
            facets: dict[str, Any] = {}
            input_facets: dict[str, Any] = {}
            if version is not None:
                facets["version"] = _version(str(version))
                schema = self._schema(entry["where"], version)
                if schema is not None:
                    facets["schema"] = schema
            if entry["partitions"] and not entry["whole"]:
                input_facets["subset"] = _read_subset(tuple(entry["partitions"]))
            if entry["missing"]:
                input_facets["tracelake"] = TracelakeInputFacet(missingPartitions=entry["missing"], producer=PRODUCER)
            out.append(InputDataset(namespace=namespace, name=name, facets=facets, inputFacets=input_facets))
        return out + models

    def _model_facets(self, version: Any) -> dict[str, Any]:
        facets: dict[str, Any] = {"datasetType": _model_type()}
        if version is not None:
            facets["version"] = _version(str(version))
        return facets

    def _outputs(self, record: Mapping[str, Any], checks: Sequence[Mapping[str, Any]]) -> list[OutputDataset]:
        out = []
        main = self._table_id(record.get("output_table"), record.get("output_path"))
        if main is not None:
            facets: dict[str, Any] = {}
            output_facets: dict[str, Any] = {}
            version = _int(record.get("output_version"))
            if version is not None:
                facets["version"] = _version(str(version))
                output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=_int(record.get("output_rows")), size=_int(record.get("output_bytes")),
                    fileCount=_int(record.get("output_files")), producer=PRODUCER)
                partitions = _list(record.get("output_partitions"))
                if partitions:
                    output_facets["subset"] = _written_subset(tuple(str(p) for p in partitions))
            schema = _schema_facet(record.get("output_schema_json"))
            if schema is not None:
                facets["schema"] = schema
            lineage = self._column_lineage(record)
            if lineage is not None:
                facets["columnLineage"] = lineage
            if checks:
                facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=[_assertion(c) for c in checks], producer=PRODUCER)
            out.append(OutputDataset(namespace=main[0], name=main[1], facets=facets, outputFacets=output_facets))
        for side, rows_field in (("quarantine", "quarantined_rows"), ("rejected", "rejected_rows")):
            table, version = record.get(f"{side}_table"), _int(record.get(f"{side}_version"))
            if table and version is not None and version >= 0:
                namespace, name = dataset_id(self.ctx.layout.table(table))
                out.append(OutputDataset(
                    namespace=namespace, name=name,
                    facets={"version": _version(str(version))},
                    outputFacets={"outputStatistics": _Stats(rowCount=_int(record.get(rows_field)),
                                                             producer=PRODUCER)}))
        for model in _list(record.get("models")):
            if model.get("role") == "registered":
                out.append(OutputDataset(namespace=MODEL_NAMESPACE, name=model["name"],
                                         facets=self._model_facets(model.get("version"))))
        return out

    def _column_lineage(self, record: Mapping[str, Any]) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
        """Declared lineage keys: output column ``out`` holds input column ``in`` (identity)."""
        raw = record.get("lineage_keys_json")
        if not raw:
            return None
        paths = {i.get("name"): self.ctx.layout.resolve(i.get("name"), i.get("path"))
                 for i in _list(record.get("inputs")) if i.get("kind") == "table"}
        tables = tuple(sorted((t, paths.get(t) or self.ctx.layout.table(t)) for t in json.loads(raw)))
        return _column_lineage(raw, tables)


@lru_cache(maxsize=1024)
def _column_lineage(raw: str, tables: tuple[tuple[str, str], ...]
                    ) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
    where = dict(tables)
    fields: dict[str, column_lineage_dataset.Fields] = {}
    for table, specs in json.loads(raw).items():
        namespace, name = dataset_id(where[table])
        for spec in specs:
            out_col, _, in_col = spec.partition("=")
            out_col, in_col = out_col.strip(), (in_col or out_col).strip()
            fields.setdefault(out_col, column_lineage_dataset.Fields(inputFields=[])).inputFields.append(
                column_lineage_dataset.InputField(
                    namespace=namespace, name=name, field=in_col,
                    transformations=[column_lineage_dataset.Transformation(type="DIRECT", subtype="IDENTITY")]))
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields, producer=PRODUCER) if fields else None


@lru_cache(maxsize=4096)
def _read_subset(partitions: tuple[str, ...]) -> base_subset_dataset.InputSubsetInputDatasetFacet:
    return base_subset_dataset.InputSubsetInputDatasetFacet(inputCondition=_partitions(partitions), producer=PRODUCER)


@lru_cache(maxsize=4096)
def _written_subset(partitions: tuple[str, ...]) -> base_subset_dataset.OutputSubsetOutputDatasetFacet:
    return base_subset_dataset.OutputSubsetOutputDatasetFacet(outputCondition=_partitions(partitions),
                                                              producer=PRODUCER)


def _partitions(values: Sequence[str]) -> base_subset_dataset.PartitionSubsetCondition:
    return base_subset_dataset.PartitionSubsetCondition(partitions=[
        base_subset_dataset.Partition(dimensions={PARTITION_COLUMN: str(v)}, identifier=str(v)) for v in values])


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _assertion(check: Mapping[str, Any]) -> data_quality_assertions_dataset.Assertion:
    details = json.loads(check["details_json"]) if check.get("details_json") else {}
    column = details.get("column") if isinstance(details, dict) else None
    params = {k: v for k, v in (("blocking", None if check.get("blocking") is None else bool(check["blocking"])),
                                ("failing_rows", _int(check.get("failing_rows"))),
                                ("runbook_url", check.get("runbook_url")), ("check_id", check.get("check_id")))
              if v is not None}
    return data_quality_assertions_dataset.Assertion(
        assertion=check["check_name"], success=bool(check["passed"]),
        column=column if isinstance(column, str) else None,
        severity=check.get("severity"), name=check["check_name"], description=check.get("description"),
        expected=_text(check.get("threshold_text")) or _text(check.get("threshold_value")),
        actual=_text(check.get("observed_text")) or _text(check.get("observed_value")), params=params)
