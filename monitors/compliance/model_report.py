"""The dossier of one registered model version, built from the records.

Sections, each with what it proves: identity (registry version, registering run, code, config,
trigger, MLflow links); training data (every upstream table@version down to the sources, as
recorded at write time, and the lineage graph); data quality (every declared test upstream of
the training set and of the served predictions); performance in service (evaluation metrics per
slice over the serving life, label arrival, limits crossed); drift against the lineage
reference; incidents (alerts and their runbooks); changes against the previous version; and
integrity (chain heads, audit verify, retention verify).

The model's *serving life* is what its consumers recorded: every run that loaded this version,
and the days of data they scored. Its *training side* is the run-level closure upstream of the
run that registered it; its *serving side* is the closure upstream of its consumers, minus the
training side.

This module resolves the version, finds its two sides and assembles the sections, which are built
in ``model_origin`` (identity, training data, data quality), ``model_service`` (performance,
incidents), ``drift_verdicts`` (drift) and ``model_changes`` (changes).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tracelake.monitors.compliance.closure import Closure, upstream_closure
from tracelake.monitors.compliance.drift_verdicts import drift_rows_for, model_drift_section
from tracelake.monitors.compliance.integrity import integrity_checks, integrity_section
from tracelake.monitors.compliance.lineage_graph import lineage_figure, version_ranges
from tracelake.monitors.compliance.model_changes import changes_section
from tracelake.monitors.compliance.model_origin import data_quality_section, identity_section, training_data_section
from tracelake.monitors.compliance.model_service import incidents_section, performance_section, serving_runs, span
from tracelake.monitors.compliance.records import Records, ReportInputError, now_utc

# Importers written before the split still find drift_rows_for, lineage_figure and version_ranges here.
__all__ = ["build_model_report", "drift_rows_for", "lineage_figure", "resolve_model_version", "version_ranges"]


def resolve_model_version(records: Records, name: str, version: str | None) -> dict[str, Any]:
    """The registered version asked for (default: the newest), or one clear line saying why not."""
    every = records.registered_versions()
    if not every:
        raise ReportInputError(f"no model version was registered by a recorded run in {records.lake.settings.home}")
    mine = [v for v in every if v["name"] == name]
    if not mine:
        names = sorted({v["name"] for v in every})
        raise ReportInputError(f"unknown model {name!r}: registered models are {', '.join(names)}")
    if version is None:
        return mine[-1]
    wanted = str(version).lstrip("v")
    for v in mine:
        if v["version"] == wanted:
            return v
    raise ReportInputError(f"model {name} has no version {version!r}: registered versions are "
                           f"{', '.join(v['version'] for v in mine)}")


class _Sides:
    """The model's training side (upstream of the registering run) and serving side (upstream of
    its consumers, minus the training side), every recorded run of both cited."""

    def __init__(self, records: Records, model: dict[str, Any]):
        index = records.index
        self.consumers = serving_runs(records, model["name"], model["version"])
        self.training = upstream_closure(index, [model["run_id"]])
        self.serving = upstream_closure(index, [c["run_id"] for c in self.consumers], follow_models=False)
        self.serving_only = self.serving.runs - self.training.runs
        for run_id in self.training.runs | self.serving_only:
            if index.has(run_id):
                records.cited.add(run_id)
        self.components = {index.runs.at[r, "component"] for r in self.training.runs | self.serving.runs
                            if index.has(r)}

    def figure(self, records: Records, model: dict[str, Any]) -> dict[str, Any]:
        name, version = model["name"], model["version"]
        serving_only = Closure(depth={r: d for r, d in self.serving.depth.items() if r in self.serving_only},
                               edges=self.serving.edges)
        return lineage_figure(records, f"Lineage of {name} v{version}: training side and serving side",
                              {"training": self.training, "serving": serving_only},
                              model_label=f"model {name} v{version}", registrar=model["run_id"])


def _neighbours(records: Records, name: str, version: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the version registered before this one, the one registered after), None where there is none."""
    versions = list(records.registered_versions(name))
    position = next(i for i, v in enumerate(versions) if v["version"] == version)
    previous = versions[position - 1] if position > 0 else None
    later = versions[position + 1] if position + 1 < len(versions) else None
    return previous, later


def build_model_report(records: Records, name: str, version: str | None = None, *,
                       integrity: bool = True) -> dict[str, Any]:
    """The JSON model of the report (see the module docstring); raises ReportInputError early."""
    model = resolve_model_version(records, name, version)
    name, version = model["name"], model["version"]
    rec = records.record(model["run_id"])
    sides = _Sides(records, model)
    previous, later = _neighbours(records, name, version)
    first_served, last_served = span([c["day"] for c in sides.consumers])
    train_first, _ = span([records.run_days.get(r) for r in sides.training.runs if r in records.run_days.index])
    figure = sides.figure(records, model)
    sections = [
        identity_section(records, model, rec, records.lake.settings.mlflow_ui_url),
        training_data_section(records, rec, sides.training, sides.serving, figure),
        data_quality_section(records, sides.training.runs, sides.serving_only),
        performance_section(records, name, version, sides.consumers),
        model_drift_section(records, name, version),
        incidents_section(records, sides.components, train_first or first_served, last_served or train_first),
        changes_section(records, model, previous, sides.training),
    ]
    checks = integrity_checks(records) if integrity else None
    heads = records.chain_heads()
    if checks is not None:
        sections.append(integrity_section(checks, heads))
    return {
        "kind": "model",
        "title": f"Model report: {name} v{version}",
        "subject": {"model": name, "version": version, "registering_run": model["run_id"]},
        "summary": _summary(model, rec, sides.consumers, later, (first_served, last_served), sections[2], checks),
        "generated_at": now_utc().isoformat(),
        "lakehouse": records.lake.settings.home,
        "sections": sections,
        "built_from": {"chain_heads": heads},
    }


def _summary(model: dict[str, Any], rec: dict[str, Any], consumers: list[dict[str, Any]],
             later: dict[str, Any] | None, served: tuple[date | None, date | None], data_quality: dict[str, Any],
             checks: dict[str, Any] | None) -> list[list[str]]:
    name, version = model["name"], model["version"]
    status = "in service" if consumers and later is None else "replaced by v" + later["version"] if later else \
        "registered, not yet served"
    issues = data_quality["tables"][0]["rows"]
    return [
        ["model", f"{name} v{version} ({status})"],
        ["trained on", "; ".join(f"{i['name']}@v{i.get('version')}" for i in rec["inputs"]
                                 if i.get("kind") == "table")],
        ["served", f"{served[0]} .. {served[1]}, {len(consumers)} runs" if consumers else "not yet"],
        ["upstream failures", f"{sum(r['outcome'] == 'failed' for r in issues)} failed, "
                              f"{sum(r['outcome'] == 'warned' for r in issues)} warned "
                              "declared tests"],
        ["integrity", "audit verify " + ("OK" if checks and checks["audit_verify"]["ok"] else
                                         "PROBLEMS" if checks else "not run")],
    ]
