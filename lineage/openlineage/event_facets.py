"""The pieces of an OpenLineage event that are plain conversions of recorded values: times,
Delta schemas, partitions, declared tests and lineage keys as the official client's facets.

Facets that are the same for many events are built once and shared (they are never mutated):
the client's classes validate their URIs on construction, which is most of an event's cost.
``events`` assembles them into RunEvents.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from openlineage.client.facet_v2 import (
    base_subset_dataset,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    dataset_type_dataset,
    dataset_version_dataset,
    job_type_job,
    nominal_time_run,
    ownership_job,
    processing_engine_run,
    schema_dataset,
    source_code_location_job,
)

from tracelake.lineage.layout import PARTITION_COLUMN
from tracelake.lineage.openlineage.facets import PRODUCER
from tracelake.lineage.openlineage.naming import dataset_id

__all__ = [
    "as_dict",
    "as_int",
    "as_list",
    "check_assertion",
    "column_lineage_facet",
    "engine_facet",
    "event_time",
    "iso",
    "job_type_facet",
    "model_type_facet",
    "nominal_end",
    "nominal_facet",
    "nominal_start",
    "owners_facet",
    "read_subset_facet",
    "schema_facet",
    "schema_fields",
    "source_facet",
    "version_facet",
    "written_subset_facet",
]


def event_time(value: Any) -> str:
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


def as_dict(value: Any) -> dict[str, Any]:
    """Arrow maps read back as lists of pairs (or dicts, from pandas): always a dict."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return dict(value)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value)


def as_int(value: Any) -> int | None:
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


@lru_cache(maxsize=1)
def job_type_facet() -> job_type_job.JobTypeJobFacet:
    return job_type_job.JobTypeJobFacet(processingType="BATCH", integration="DAGSTER", jobType="ASSET",
                                        producer=PRODUCER)


@lru_cache(maxsize=4096)
def version_facet(version: str) -> dataset_version_dataset.DatasetVersionDatasetFacet:
    return dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version, producer=PRODUCER)


@lru_cache(maxsize=1)
def model_type_facet() -> dataset_type_dataset.DatasetTypeDatasetFacet:
    return dataset_type_dataset.DatasetTypeDatasetFacet(datasetType="MODEL", producer=PRODUCER)


@lru_cache(maxsize=256)
def source_facet(url: str | None, commit: str, branch: str | None) -> source_code_location_job.SourceCodeLocationJobFacet:
    return source_code_location_job.SourceCodeLocationJobFacet(type="git", url=url or "unknown", repoUrl=url,
                                                               version=commit, branch=branch, producer=PRODUCER)


@lru_cache(maxsize=256)
def owners_facet(owner: str) -> ownership_job.OwnershipJobFacet:
    return ownership_job.OwnershipJobFacet(owners=[ownership_job.Owner(name=owner)], producer=PRODUCER)


@lru_cache(maxsize=64)
def engine_facet(version: str, adapter: str | None) -> processing_engine_run.ProcessingEngineRunFacet:
    return processing_engine_run.ProcessingEngineRunFacet(version=version, name="spark",
                                                          openlineageAdapterVersion=adapter, producer=PRODUCER)


@lru_cache(maxsize=1024)
def nominal_facet(start: str, end: str | None) -> nominal_time_run.NominalTimeRunFacet:
    return nominal_time_run.NominalTimeRunFacet(nominalStartTime=start, nominalEndTime=end, producer=PRODUCER)


@lru_cache(maxsize=4096)
def schema_facet(schema_json: str | None) -> schema_dataset.SchemaDatasetFacet | None:
    """A Delta schema (``{"type": "struct", "fields": [...]}``) or the recorder's canonical field
    list (``[{"name", "type", "nullable"}]``) as a schema facet."""
    if not schema_json:
        return None
    parsed = json.loads(schema_json)
    fields = parsed.get("fields", []) if isinstance(parsed, dict) else parsed
    return schema_dataset.SchemaDatasetFacet(fields=schema_fields(fields), producer=PRODUCER)


def nominal_start(partition_key: str | None) -> str | None:
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


def nominal_end(partition_key: str | None) -> str | None:
    """Only a range ``a...b`` of daily keys says where it ends (the day after ``b``); a single
    key does not say its cadence, so the end is left out rather than guessed."""
    if not partition_key or "..." not in partition_key:
        return None
    last = partition_key.split("...")[-1]
    try:
        return iso(datetime.combine(date.fromisoformat(last) + timedelta(days=1), datetime.min.time(), UTC))
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def column_lineage_facet(raw: str, tables: tuple[tuple[str, str], ...]
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
def read_subset_facet(partitions: tuple[str, ...]) -> base_subset_dataset.InputSubsetInputDatasetFacet:
    return base_subset_dataset.InputSubsetInputDatasetFacet(inputCondition=_partitions(partitions), producer=PRODUCER)


@lru_cache(maxsize=4096)
def written_subset_facet(partitions: tuple[str, ...]) -> base_subset_dataset.OutputSubsetOutputDatasetFacet:
    return base_subset_dataset.OutputSubsetOutputDatasetFacet(outputCondition=_partitions(partitions),
                                                              producer=PRODUCER)


def _partitions(values: Sequence[str]) -> base_subset_dataset.PartitionSubsetCondition:
    return base_subset_dataset.PartitionSubsetCondition(partitions=[
        base_subset_dataset.Partition(dimensions={PARTITION_COLUMN: str(v)}, identifier=str(v)) for v in values])


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


def check_assertion(check: Mapping[str, Any]) -> data_quality_assertions_dataset.Assertion:
    details = json.loads(check["details_json"]) if check.get("details_json") else {}
    column = details.get("column") if isinstance(details, dict) else None
    params = {k: v for k, v in (("blocking", None if check.get("blocking") is None else bool(check["blocking"])),
                                ("failing_rows", as_int(check.get("failing_rows"))),
                                ("runbook_url", check.get("runbook_url")), ("check_id", check.get("check_id")))
              if v is not None}
    return data_quality_assertions_dataset.Assertion(
        assertion=check["check_name"], success=bool(check["passed"]),
        column=column if isinstance(column, str) else None,
        severity=check.get("severity"), name=check["check_name"], description=check.get("description"),
        expected=_text(check.get("threshold_text")) or _text(check.get("threshold_value")),
        actual=_text(check.get("observed_text")) or _text(check.get("observed_value")), params=params)
