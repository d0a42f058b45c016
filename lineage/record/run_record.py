"""A component run as it is recorded: its audit record and what MLflow is told about it.

:func:`run_record` is the ``component_runs`` record of a run as it stands (the open marker at
the start, the final record at the end - the recorder adds status, times and errors);
:func:`finish_mlflow_run` queues the run's params, metrics, tags and Delta datasets for its MLflow
run. Both redact: a tag named like a credential is recorded as ``***``.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from tracelake.lineage.layout import Layout
from tracelake.lineage.openlineage.ids import openlineage_run_id
from tracelake.lineage.record.mlflow_link import DatasetRef, MlflowLink, flatten_params
from tracelake.lineage.record.provenance import git_state, library_versions
from tracelake.lineage.record.redact import redact_mapping
from tracelake.lineage.record.run import ComponentRun

__all__ = ["finish_mlflow_run", "input_params", "run_record"]


def input_params(run: ComponentRun) -> dict[str, str]:
    """What the run read, as MLflow params (where MLflow users look first): table versions and
    partition spans, and model versions."""
    out: dict[str, str] = {}
    for i in run.inputs:
        if i["kind"] == "model":
            out[f"input.model.{i['name']}"] = f"v{i['model_version']}"
            continue
        out[f"input.{i['name']}.version"] = str(i["version"])
        parts = i.get("partitions") or []
        if parts:
            out[f"input.{i['name']}.partitions"] = f"{parts[0]}..{parts[-1]} ({len(parts)})"
    return out


def finish_mlflow_run(mlflow: MlflowLink, run: ComponentRun, status: str, mlflow_run_id: str,
                      note: str | None) -> None:
    """Queue the end of the run's MLflow run: status, params (config and inputs), metrics, tags
    and the Delta datasets it read and wrote."""
    trains = any(m["role"] == "registered" for m in run.models)
    datasets = [DatasetRef(i["name"], i["path"], i["version"], "training" if trains else "input")
                for i in run.inputs if i["kind"] == "table"]
    if run.output is not None:
        datasets.append(DatasetRef(run.output.table, run.output.path, run.output.version, "output",
                                   digest=run.output.content_digest[:16] or None, rows=run.output.rows))
    tags = {**redact_mapping(run.extra_tags), "tracelake.status": status}  # a tag named like a credential: ***
    if run.output is not None:
        tags.update({"tracelake.output": f"{run.output.table}@v{run.output.version}",
                     "tracelake.output_rows": str(run.output.rows)})
    if note:
        tags["mlflow.note.content"] = note
    mlflow.finish_run(mlflow_run_id, status=status, params={**flatten_params(run.config), **input_params(run)},
                      metrics=run.metrics, tags=tags, datasets=datasets)


def run_record(run: ComponentRun, layout: Layout) -> dict[str, Any]:
    """The run's ``component_runs`` record as it stands; the end (final status, times, errors,
    MLflow ids) is added by the recorder."""
    git = git_state(run.source_path) if run.source_path else None
    out = run.output
    return {
        "run_id": run.run_id,
        "component": run.component,
        "asset_key": run.asset_key,
        "partition_key": run.partition_key,
        "dagster_run_id": run.dagster_run_id,
        "status": run.status,
        "started_at": run.started_at,
        "code_version": run.code_version,
        "git_commit": git.commit if git else None,
        "git_dirty": git.dirty if git else None,
        "git_branch": git.branch if git else None,
        "source_hash": run.source_hash,
        "library_versions": library_versions(),
        "config_json": json.dumps(run.config, sort_keys=True, default=str),
        "owner": run.owner,
        "tags": redact_mapping({**run.tags, **run.extra_tags}),  # a tag named like a credential: ***
        "lineage_keys_json": json.dumps(run.lineage_keys, sort_keys=True) if run.lineage_keys else None,
        "inputs": run.inputs,
        "output_table": out.table if out else run.planned_table,
        "output_path": out.path if out else (layout.table(run.planned_table) if run.planned_table else None),
        "output_version": out.version if out else None,
        "output_rows": out.rows if out else None,
        "output_files": out.files if out else None,
        "output_bytes": out.bytes if out else None,
        "output_partitions": out.partitions if out else None,
        "output_schema_hash": out.schema_hash if out else None,
        "output_schema_json": out.schema_json if out else None,
        "content_digest": out.content_digest if out else None,
        "output_added_files": out.added_files if out else None,
        "write_mode": out.write_mode if out else run.planned_mode,
        "quarantine_table": run.quarantine.table if run.quarantine else None,
        "quarantine_version": run.quarantine.version if run.quarantine and run.quarantine.version >= 0 else None,
        "quarantined_rows": run.quarantine.rows if run.quarantine else None,
        "rejected_table": run.rejected.table if run.rejected else None,
        "rejected_version": run.rejected.version if run.rejected else None,
        "rejected_rows": run.rejected.rows if run.rejected else None,
        "rolled_back_version": run.rolled_back_version,
        "models": run.models,
        "metrics": run.metrics,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "openlineage_run_id": openlineage_run_id(run.run_id),
    }
