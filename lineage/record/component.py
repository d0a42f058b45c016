"""``@component``: one line turns a Dagster asset into an audited Tracelake component.

    @component(partitions_def=daily, owner="team:data-eng")
    def cleaned_trips(raw_trips: DataFrame) -> DataFrame:
        return raw_trips.where("fare_amount > 0")

is a Dagster ``@asset`` whose parameters name its upstream assets, exactly as with an IO manager.
What the decorator adds, on every materialisation, successful or not:

- an open audit record before anything runs, and a final one after (see ``recorder``);
- each input read at a pinned Delta version, recorded (partition mappings are honoured);
- the returned DataFrame written as one Delta commit naming the run (``tables``);
- an MLflow run linked both ways, with params, metrics and the Delta datasets;
- Dagster metadata: table path, Delta version, rows, schema, run id, MLflow URL, and a data
  version equal to the Delta version, so staleness follows real data changes.

Parameters are classified like Dagster does: ``context``; a ``ComponentRun`` annotation gets the
run (for metrics, models, ad hoc reads); ``dg.Config`` subclasses are run config;
``ConfigurableResource`` subclasses are resources; everything else is an upstream asset.
Return ``None`` from a component declared ``optional_output=True`` to record a *skipped* run
(e.g. a source partition that never arrived); Dagster then skips its downstream.
"""

from __future__ import annotations

import inspect
import time
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import dagster as dg

from tracelake.lineage.lakehouse import LakehouseResource
from tracelake.lineage.record.provenance import source_hash
from tracelake.lineage.record.checks import CheckContext, check_result_rows, evaluate_checks, quarantine_counts, split_quarantine
from tracelake.lineage.record.recorder import ComponentRun, MissingInputError, OutputRecord
from tracelake.lineage.record.tables import SchemaPolicy, WriteMode

__all__ = ["component", "ComponentSpec", "TableVersion", "component_spec", "table_name_for"]

SPEC_METADATA_KEY = "tracelake/component"


@dataclass(frozen=True)
class TableVersion:
    """What a component hands to Dagster: a pointer to the Delta commit it made."""

    table: str
    path: str
    version: int
    run_id: str


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    table: str
    inputs: Mapping[str, dg.AssetKey]
    write_mode: WriteMode
    schema_policy: SchemaPolicy
    owner: str | None
    tags: Mapping[str, str]
    lineage_keys: Mapping[str, Sequence[str]] | None
    source_hash: str
    source_path: str | None
    extras: Mapping[str, Any] = field(default_factory=dict)


_SPECS: dict[str, ComponentSpec] = {}


def component_spec(asset_key: dg.AssetKey | str) -> ComponentSpec:
    key = asset_key.to_user_string() if isinstance(asset_key, dg.AssetKey) else asset_key
    try:
        return _SPECS[key]
    except KeyError:
        raise KeyError(f"{key!r} is not a Tracelake component") from None


def table_name_for(key: dg.AssetKey) -> str:
    return key.to_python_identifier()


def _is_subclass(annotation: Any, base: type) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return inspect.isclass(annotation) and issubclass(annotation, base)


def _to_spark(value: Any, spark_provider: Callable[[], Any]) -> Any:
    from pyspark.sql import DataFrame as SparkDataFrame

    if isinstance(value, SparkDataFrame):
        return value
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(value, pd.DataFrame):
        return spark_provider().createDataFrame(value)
    raise TypeError(
        f"a @component must return a Spark or pandas DataFrame (or None when optional_output=True), "
        f"got {type(value).__name__}"
    )


def _dagster_schema(output: OutputRecord) -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn(f.name, f.dataType.simpleString(),
                       constraints=dg.TableColumnConstraints(nullable=bool(f.nullable)))
        for f in output.schema.fields
    ])


def component(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    key_prefix: str | Sequence[str] | None = None,
    ins: Mapping[str, dg.AssetIn] | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
    write_mode: WriteMode | None = None,
    schema_evolution: SchemaPolicy = "strict",
    owner: str | None = None,
    tags: Mapping[str, str] | None = None,
    lineage_keys: Mapping[str, str | Sequence[str]] | None = None,
    optional_output: bool = False,
    skip_if_inputs_missing: bool | Sequence[str] = False,
    code_version: str | None = None,
    group_name: str | None = None,
    description: str | None = None,
    kinds: set[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    checks: Sequence[Any] = (),
    check_specs: Sequence[dg.AssetCheckSpec] | None = None,
    after_write: Callable[[Any, ComponentRun, Any], Sequence[Any]] | None = None,
    reads: Sequence[str | dg.AssetKey] = (),
    **asset_kwargs: Any,
):
    """Declare an audited component (a Dagster asset). See the module docstring.

    ``write_mode``: ``partition`` (default for partitioned assets: replace the run's partition),
    ``overwrite`` (default otherwise: replace the table) or ``append``.
    ``lineage_keys``: for row-level lineage, the key columns shared with each input, e.g.
    ``{"trip_features": "trip_id"}``; recorded with every run so traces still work years later.
    ``skip_if_inputs_missing``: when an input (any, or those named) has no data at all for this
    run (e.g. evaluation before any prediction exists), record a *skipped* run instead of failing.
    ``checks``: declared tests (see ``tracelake.monitors.checks.rules``) evaluated on the rows written,
    in one Spark pass, at every materialisation; each is a Dagster asset check (``blocking``
    ones stop downstream in the run), and every result is stored with the run. Tests declared
    ``quarantine=True`` divert failing rows to ``<table>__quarantine`` instead of dropping them.
    ``after_write(context, run, df)`` may return extra events (asset check results) to yield.
    ``reads``: assets the function reads itself with ``run.read_table`` (optional inputs, or
    inputs chosen at run time such as a reference found by lineage): shown as upstream edges in
    the asset graph; what was actually read is recorded like any input.
    """

    def decorate(func: Callable) -> dg.AssetsDefinition:
        asset_name = name or func.__name__
        prefix = [key_prefix] if isinstance(key_prefix, str) else list(key_prefix or [])
        own_key = dg.AssetKey([*prefix, asset_name])
        table = table_name_for(own_key)
        hints = typing.get_type_hints(func, include_extras=True)
        params = list(inspect.signature(func).parameters.values())

        wants_context = bool(params) and params[0].name == "context"
        run_param: str | None = None
        config_param: inspect.Parameter | None = None
        resource_params: list[inspect.Parameter] = []
        input_params: list[str] = []
        for p in params[1:] if wants_context else params:
            ann = hints.get(p.name, p.annotation)
            if _is_subclass(ann, ComponentRun):
                run_param = p.name
            elif _is_subclass(ann, dg.ConfigurableResource) or _is_subclass(ann, dg.ConfigurableIOManager):
                resource_params.append(p.replace(annotation=ann))
            elif _is_subclass(ann, dg.Config):  # after resources: every resource is also a Config
                config_param = p.replace(annotation=ann)
            elif p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                raise dg.DagsterInvalidDefinitionError(f"@component {asset_name}: *args/**kwargs are not supported")
            else:
                input_params.append(p.name)

        ins_map = dict(ins or {})
        unknown = set(ins_map) - set(input_params)
        if unknown:
            raise dg.DagsterInvalidDefinitionError(
                f"@component {asset_name}: ins={sorted(unknown)} do not name parameters of the function")
        input_keys: dict[str, dg.AssetKey] = {}
        deps: list[dg.AssetDep] = []
        for pname in input_params:
            spec_in = ins_map.get(pname)
            if spec_in is not None and spec_in.key is not None:
                key = spec_in.key
            elif spec_in is not None and spec_in.key_prefix is not None:
                key = dg.AssetKey([*spec_in.key_prefix, pname])
            else:
                key = dg.AssetKey([*prefix, pname])  # Dagster's rule: inputs share the asset's prefix
            input_keys[pname] = key
            deps.append(dg.AssetDep(key, partition_mapping=spec_in.partition_mapping if spec_in else None))
        deps += [dg.AssetDep(dg.AssetKey.from_user_string(r) if isinstance(r, str) else r) for r in reads]

        mode: WriteMode = write_mode or ("partition" if partitions_def is not None else "overwrite")
        if skip_if_inputs_missing and not optional_output:
            raise dg.DagsterInvalidDefinitionError(
                f"@component {asset_name}: skip_if_inputs_missing needs optional_output=True")
        if mode == "partition" and partitions_def is None:
            raise dg.DagsterInvalidDefinitionError(f"@component {asset_name}: write_mode='partition' needs partitions_def")
        keys_norm = {k: [v] if isinstance(v, str) else list(v) for k, v in (lineage_keys or {}).items()}
        bad_keys = set(keys_norm) - {k.to_python_identifier() for k in input_keys.values()} - set(input_params)
        if bad_keys:
            raise dg.DagsterInvalidDefinitionError(
                f"@component {asset_name}: lineage_keys names {sorted(bad_keys)}, which are not inputs")
        # Recorded by input *table* name: that is what a run's inputs are called years later.
        keys_norm = {table_name_for(input_keys[k]) if k in input_keys else k: v for k, v in keys_norm.items()}
        names = [c.name for c in checks]
        if len(set(names)) != len(names):
            raise dg.DagsterInvalidDefinitionError(f"@component {asset_name}: two checks share a name: {names}")
        all_specs = [dg.AssetCheckSpec(c.name, asset=own_key, blocking=bool(c.blocking), description=c.description)
                     for c in checks] + list(check_specs or [])
        src_hash = source_hash(func)
        try:
            src_path = inspect.getsourcefile(func)
        except TypeError:
            src_path = None
        spec = ComponentSpec(
            name=asset_name, table=table, inputs=input_keys, write_mode=mode, schema_policy=schema_evolution,
            owner=owner, tags=dict(tags or {}), lineage_keys=keys_norm or None, source_hash=src_hash,
            source_path=src_path,
        )
        _SPECS[own_key.to_user_string()] = spec
        uses_lakehouse = any(p.name == "lakehouse" for p in resource_params)

        def body(context: dg.AssetExecutionContext, **kwargs: Any):
            lake_res: LakehouseResource = kwargs["lakehouse"] if uses_lakehouse else kwargs.pop("lakehouse")
            lake = lake_res.open()
            recorder = lake.recorder
            partition_keys = list(context.partition_keys) if context.has_partition_key or _has_range(context) else None
            config_value = kwargs.get(config_param.name) if config_param else None
            run = recorder.begin(
                component=asset_name,
                asset_key=own_key.to_user_string(),
                partition_key=context.partition_key if context.has_partition_key else (
                    f"{partition_keys[0]}...{partition_keys[-1]}" if partition_keys else None),
                partition_keys=partition_keys,
                dagster_run_id=context.run_id,
                code_version=code_version or src_hash[:16],
                source_hash=src_hash,
                source_path=src_path,
                owner=owner,
                tags=dict(tags or {}),
                config=_describe_config(config_value, {p.name: kwargs.get(p.name) for p in resource_params}),
                lineage_keys=keys_norm or None,
                output_table=table,
            )
            run.activate()
            try:
                call: dict[str, Any] = {}
                for pname, key in input_keys.items():
                    parts = None
                    if partition_keys is not None and _is_partitioned_table(lake.layout.table(table_name_for(key))):
                        parts = list(context.asset_partition_keys_for_input(key.to_python_identifier()))
                    try:
                        call[pname] = recorder.read_input(run, table_name_for(key), partitions=parts)
                    except MissingInputError as exc:
                        if not (skip_if_inputs_missing is True or (
                                not isinstance(skip_if_inputs_missing, bool) and pname in skip_if_inputs_missing)):
                            raise
                        recorder.skip(run, f"input {pname} has no data: {exc}")
                        context.log.warning(f"{asset_name}: skipped, {exc}")
                        return
                if run_param:
                    call[run_param] = run
                for p in resource_params:
                    call[p.name] = kwargs[p.name]
                if config_param is not None:
                    call[config_param.name] = config_value
                result = func(context, **call) if wants_context else func(**call)
                if inspect.isgenerator(result):
                    raise TypeError(f"@component {asset_name} must return a DataFrame, not yield")
                if result is None:
                    if not optional_output:
                        raise TypeError(
                            f"@component {asset_name} returned None; return a DataFrame, or declare "
                            "optional_output=True if a run may legitimately produce nothing")
                    recorder.skip(run, "the component produced no output")
                    context.log.warning(f"{asset_name}: no output; recorded run {run.run_id} as skipped")
                    return
                df = _to_spark(result, lake.spark)
                missing = sorted({spec.split("=")[0] for specs in keys_norm.values() for spec in specs} - set(df.columns))
                if missing:
                    raise ValueError(f"@component {asset_name} declares lineage key column(s) {missing} that its "
                                     f"output does not have (columns: {df.columns}); fix lineage_keys")
                produced = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
                halves = None
                if any(getattr(c, "quarantine", False) and c.row_condition() for c in checks):
                    try:
                        halves = split_quarantine(checks, df.persist())
                    except Exception as exc:  # a rule names a column the output lacks (schema break)
                        df.unpersist()
                        context.log.error(f"{asset_name}: rows not quarantined, a rule cannot be evaluated: {exc}")
                if halves is not None:
                    good, bad = halves
                    quarantined, by_rule = quarantine_counts(
                        bad, [c.name for c in checks if getattr(c, "quarantine", False) and c.row_condition()])
                    recorder.commit_quarantine(run, bad, table=f"{table}__quarantine", mode=mode, rows=quarantined)
                    output = recorder.commit_output(run, good, table=table, mode=mode, schema_policy=schema_evolution)
                    df.unpersist()
                else:
                    quarantined, by_rule = 0, {}
                    output = recorder.commit_output(run, df, table=table, mode=mode, schema_policy=schema_evolution)
                results = []
                if checks:
                    t_checks = time.perf_counter()
                    ctx = CheckContext(run, lake, output, quarantined, produced, by_rule)
                    results = evaluate_checks(checks, ctx)
                    recorder.record_checks(check_result_rows(run, results))
                    run.timings.add("checks_ms", t_checks)
                extra_events = list(after_write(context, run, df) if after_write else [])
                recorder.succeed(run)
            except BaseException as exc:
                if run.status == "started":
                    # Exceptions are failures; interrupts (run termination, Ctrl-C) are abandonment.
                    recorder.fail(run, exc, abandoned=not isinstance(exc, Exception))
                raise
            finally:
                run.deactivate()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", dg.BetaWarning)  # data_version on Output is "beta"
                result_event = dg.Output(
                    TableVersion(table, output.path, output.version, run.run_id),
                    data_version=dg.DataVersion(f"v{output.version}"),
                    metadata=_output_metadata(run, output),
                )
            yield result_event
            for r in results:
                yield dg.AssetCheckResult(
                    asset_key=own_key, check_name=r.name, passed=bool(r.passed),
                    severity=dg.AssetCheckSeverity.ERROR if r.severity == "error" else dg.AssetCheckSeverity.WARN,
                    metadata=_check_metadata(r, run.run_id),
                    description=r.description,
                )
            yield from extra_events

        visible = [inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                     annotation=dg.AssetExecutionContext)]
        if config_param is not None:
            visible.append(config_param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
        visible += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, default=inspect.Parameter.empty) for p in resource_params]
        if not uses_lakehouse:
            visible.append(inspect.Parameter("lakehouse", inspect.Parameter.KEYWORD_ONLY, annotation=LakehouseResource))
        body.__signature__ = inspect.Signature(visible)  # type: ignore[attr-defined]
        body.__name__ = func.__name__
        body.__qualname__ = func.__qualname__
        body.__module__ = func.__module__
        body.__doc__ = func.__doc__

        asset_metadata = {
            **(metadata or {}),
            "tracelake/table": dg.MetadataValue.text(table),
            "tracelake/write_mode": mode,
        }
        if keys_norm:
            asset_metadata["tracelake/lineage_keys"] = dg.MetadataValue.json(keys_norm)
        return dg.asset(
            name=asset_name,
            key_prefix=prefix or None,
            deps=deps,
            partitions_def=partitions_def,
            io_manager_key="delta_io_manager",
            code_version=code_version or src_hash[:16],
            group_name=group_name,
            description=description or inspect.getdoc(func),
            kinds=kinds or {"spark", "delta"},
            owners=[owner] if owner else None,
            tags=dict(tags or {}),
            metadata=asset_metadata,
            output_required=not optional_output,
            check_specs=all_specs or None,
            **asset_kwargs,
        )(body)

    return decorate(fn) if fn is not None else decorate


def _has_range(context: dg.AssetExecutionContext) -> bool:
    try:
        return context.has_partition_key_range
    except AttributeError:  # older Dagster
        return False


def _is_partitioned_table(path: str) -> bool:
    from tracelake.lineage.record import delta_meta

    latest = delta_meta.latest_version(path)
    return latest is not None and delta_meta.partitions_at(path, latest) is not None


def _describe_config(config: Any, resources: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if config is not None:
        out["config"] = config.model_dump() if hasattr(config, "model_dump") else dict(config)
    res: dict[str, Any] = {}
    for key, value in resources.items():
        if hasattr(value, "model_dump"):
            try:
                res[key] = {"type": type(value).__name__, **value.model_dump()}
            except Exception as exc:  # a resource that cannot describe itself is noted, not fatal
                res[key] = {"type": type(value).__name__, "error": f"not serialisable: {type(exc).__name__}"}
        else:
            res[key] = {"type": type(value).__name__}
    if res:
        out["resources"] = res
    return out


def _check_metadata(result: Any, run_id: str) -> dict[str, Any]:
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
    return md


def _output_metadata(run: ComponentRun, output: OutputRecord) -> dict[str, Any]:
    md: dict[str, Any] = {
        "table": dg.MetadataValue.path(output.path),
        "delta_version": dg.MetadataValue.int(output.version),
        "dagster/row_count": dg.MetadataValue.int(int(output.rows or 0)),
        "dagster/column_schema": _dagster_schema(output),
        "tracelake_run_id": dg.MetadataValue.text(run.run_id),
        "mlflow_run": dg.MetadataValue.url(run.mlflow_run_url),
        "inputs": dg.MetadataValue.json([
            {k: v for k, v in i.items() if v is not None and k in ("kind", "name", "version", "model_version", "missing_partitions")}
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
    md.update(run.output_metadata)
    return md
