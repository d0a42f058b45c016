"""What Dagster is told about a materialisation: the table version, rows, schema, MLflow link and
the command that shows the full record, plus one asset check result per declared test."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

from tracelake.lineage.record.checks import CheckResult, sanitized
from tracelake.lineage.record.redact import redact_mapping, scrub_text
from tracelake.lineage.record.run import ComponentRun, OutputRecord

if TYPE_CHECKING:
    from tracelake.lineage.record.spec import ComponentSpec

__all__ = ["check_events", "materialize_result"]


def _selected(context: dg.AssetExecutionContext, spec: ComponentSpec, results: Sequence[CheckResult]) -> list[CheckResult]:
    """Only the checks this Dagster run selected (a job may select the asset without them)."""
    chosen = {k.name for k in context.selected_asset_check_keys if k.asset_key == spec.key}
    return [r for r in results if r.name in chosen]


def _check_result(spec: ComponentSpec, result: CheckResult, run_id: str) -> dg.AssetCheckResult:
    result = sanitized(result)  # secrets out, samples bounded (a no-op for results evaluate_checks made)
    md: dict[str, Any] = {"tracelake_run_id": dg.MetadataValue.text(run_id)}
    if result.observed_value is not None:
        md["observed"] = dg.MetadataValue.float(float(result.observed_value))
    if result.observed_text:
        md["observed_detail"] = dg.MetadataValue.text(result.observed_text)
    if result.threshold_value is not None:
        md["threshold"] = dg.MetadataValue.float(float(result.threshold_value))
    if result.threshold_text:
        md["threshold_detail"] = dg.MetadataValue.text(result.threshold_text)
    if result.failing_rows is not None:
        md["failing_rows"] = dg.MetadataValue.int(int(result.failing_rows))
    if result.runbook_url:
        md["runbook"] = dg.MetadataValue.url(result.runbook_url)
    return dg.AssetCheckResult(
        asset_key=spec.key, check_name=result.name, passed=bool(result.passed), metadata=md,
        severity=dg.AssetCheckSeverity.ERROR if result.severity == "error" else dg.AssetCheckSeverity.WARN,
        description=result.description,
    )


def check_events(context: dg.AssetExecutionContext, spec: ComponentSpec, results: Sequence[CheckResult],
                 run_id: str) -> Iterator[dg.AssetCheckResult]:
    for r in _selected(context, spec, results):
        yield _check_result(spec, r, run_id)


def _schema(output: OutputRecord) -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn(f.name, f.dataType.simpleString(), constraints=dg.TableColumnConstraints(nullable=bool(f.nullable)))
        for f in output.schema.fields
    ])


def _output_metadata(run: ComponentRun, output: OutputRecord) -> dict[str, Any]:
    md: dict[str, Any] = {
        "table": dg.MetadataValue.path(output.path),
        "delta_version": dg.MetadataValue.int(output.version),
        "dagster/row_count": dg.MetadataValue.int(int(output.rows or 0)),
        "dagster/column_schema": _schema(output),
        "tracelake_run_id": dg.MetadataValue.text(run.run_id),
        "mlflow_run": dg.MetadataValue.url(run.mlflow_run_url),
        "inputs": dg.MetadataValue.json([
            {k: v for k, v in i.items()
             if v is not None and k in ("kind", "name", "version", "model_version", "missing_partitions")}
            for i in run.inputs
        ]),
        "schema_hash": dg.MetadataValue.text(output.schema_hash[:16]),
        "trace": dg.MetadataValue.md(f"`tracelake run show {run.run_id}`"),
    }
    if run.quarantine is not None:
        md["quarantined_rows"] = dg.MetadataValue.int(int(run.quarantine.rows or 0))
        md["quarantine_table"] = dg.MetadataValue.path(run.quarantine.path)
    for metric, value in run.metrics.items():
        md[f"metric/{metric}"] = dg.MetadataValue.float(float(value))
    md.update({str(k): _safe_metadata(v) for k, v in run.output_metadata.items()})
    return md


def _safe_metadata(value: Any) -> Any:
    """Metadata a component added (report links, notes), with secrets scrubbed from its text."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dg.TextMetadataValue):
        return dg.MetadataValue.text(scrub_text(value.text) or "")
    if isinstance(value, dg.UrlMetadataValue):
        return dg.MetadataValue.url(scrub_text(value.url) or "")
    if isinstance(value, dg.MarkdownMetadataValue):
        return dg.MetadataValue.md(scrub_text(value.md_str) or "")
    if isinstance(value, dg.PathMetadataValue):
        return dg.MetadataValue.path(scrub_text(str(value.path)) or "")
    if isinstance(value, dg.JsonMetadataValue):
        return dg.MetadataValue.json(redact_mapping(value.data))
    if isinstance(value, (dict, list)):
        return redact_mapping(value)
    return value


def materialize_result(context: dg.AssetExecutionContext, spec: ComponentSpec, run: ComponentRun,
                       results: Sequence[CheckResult]) -> dg.MaterializeResult:
    output = run.output
    assert output is not None, "a succeeded run has an output"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # data_version is "beta"
        return dg.MaterializeResult(
            asset_key=spec.key, data_version=dg.DataVersion(f"v{output.version}"),
            metadata=_output_metadata(run, output),
            check_results=[_check_result(spec, r, run.run_id) for r in _selected(context, spec, results)],
        )
