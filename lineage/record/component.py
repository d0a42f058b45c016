"""``@component``: one line turns a function into an audited Dagster asset.

    @component(partitions_def=daily, owner="team:data-eng")
    def cleaned_trips(raw_trips: DataFrame) -> DataFrame:
        return raw_trips.where("fare_amount > 0")

Parameters name upstream assets, exactly as with an IO manager (see ``spec`` for how each
parameter is classified). The decorator only *declares*: it builds a :class:`ComponentSpec` and
the Dagster asset around it. What happens at run time - open record, pinned reads, the function,
quarantine, declared tests, one commit, final record, Dagster events - is one object read top to
bottom: ``materialisation.Materialisation``.

The asset is a single-asset ``dg.multi_asset`` so that a run which legitimately produces nothing
(``optional_output=True``) and its declared tests can both be omitted: Dagster then records the
step as succeeded without a materialisation and skips what depends on it, instead of failing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from tracelake.lineage.record.provenance import source_hash
from tracelake.lineage.record.spec import ComponentSpec, classify_parameters, table_name_for
from tracelake.lineage.record.tables import SchemaPolicy, WriteMode

__all__ = ["component", "component_spec", "table_name_for"]

_SPEC_ATTRIBUTE = "tracelake_spec"


def component_spec(asset: dg.AssetsDefinition) -> ComponentSpec:
    """The declaration behind a ``@component`` asset (its raw function is ``.fn``)."""
    spec = getattr(asset, _SPEC_ATTRIBUTE, None)
    if spec is None:
        raise TypeError(f"{asset!r} is not a Tracelake @component")
    return spec


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
    reads: Sequence[str | dg.AssetKey] = (),
):
    """Declare an audited component (a Dagster asset). See the module docstring.

    ``write_mode``: ``partition`` (default for partitioned assets: replace the run's partition),
    ``overwrite`` (default otherwise: replace the table) or ``append``.
    ``lineage_keys``: for row-level lineage, the key columns shared with each input, e.g.
    ``{"trip_features": "trip_id"}``; recorded with every run so traces still work years later.
    ``optional_output``: the function may return None, recorded as a *skipped* run.
    ``skip_if_inputs_missing``: when an input (any, or those named) has no data at all for this
    run (e.g. evaluation before any prediction exists), record a *skipped* run instead of failing.
    ``checks``: declared tests (see ``tracelake.monitors.checks``) evaluated on the rows about to
    be written, in one Spark pass, *before* the commit: each is a Dagster asset check, a failing
    ``blocking`` one stops the commit and downstream, and every result is stored with the run.
    Tests declared ``quarantine=True`` divert failing rows to ``<table>__quarantine``.
    ``reads``: assets the function reads itself with ``run.read_table`` (optional inputs, or
    inputs chosen at run time): shown as upstream edges; what was read is recorded like any input.
    """

    def decorate(func: Callable) -> dg.AssetsDefinition:
        asset_name = name or func.__name__
        prefix = [key_prefix] if isinstance(key_prefix, str) else list(key_prefix or [])
        spec = _build_spec(func, asset_name, prefix, ins or {}, partitions_def, write_mode, schema_evolution, owner,
                           tags, lineage_keys, optional_output, skip_if_inputs_missing, code_version, checks, reads)
        asset = _build_asset(spec, ins or {}, partitions_def, group_name, description or inspect.getdoc(func),
                             kinds or {"spark", "delta"}, metadata or {})
        setattr(asset, _SPEC_ATTRIBUTE, spec)
        return asset

    return decorate(fn) if fn is not None else decorate


def _build_spec(func: Callable, asset_name: str, prefix: list[str], ins: Mapping[str, dg.AssetIn],
                partitions_def: dg.PartitionsDefinition | None, write_mode: WriteMode | None,
                schema_policy: SchemaPolicy, owner: str | None, tags: Mapping[str, str] | None,
                lineage_keys: Mapping[str, str | Sequence[str]] | None, optional_output: bool,
                skip_if_inputs_missing: bool | Sequence[str], code_version: str | None,
                checks: Sequence[Any], reads: Sequence[str | dg.AssetKey]) -> ComponentSpec:
    def invalid(message: str) -> dg.DagsterInvalidDefinitionError:
        return dg.DagsterInvalidDefinitionError(f"@component {asset_name}: {message}")

    params = classify_parameters(func, asset_name)
    unknown = set(ins) - set(params.inputs)
    if unknown:
        raise invalid(f"ins={sorted(unknown)} do not name parameters of the function")
    inputs = {p: _input_key(p, ins.get(p), prefix) for p in params.inputs}
    mode: WriteMode = write_mode or ("partition" if partitions_def is not None else "overwrite")
    if skip_if_inputs_missing and not optional_output:
        raise invalid("skip_if_inputs_missing needs optional_output=True")
    if mode == "partition" and partitions_def is None:
        raise invalid("write_mode='partition' needs partitions_def")
    keys = {k: [v] if isinstance(v, str) else list(v) for k, v in (lineage_keys or {}).items()}
    bad = set(keys) - {table_name_for(k) for k in inputs.values()} - set(params.inputs)
    if bad:
        raise invalid(f"lineage_keys names {sorted(bad)}, which are not inputs")
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise invalid(f"two checks share a name: {names}")
    src_hash = source_hash(func)
    try:
        src_path = inspect.getsourcefile(func)
    except TypeError:
        src_path = None
    return ComponentSpec(
        name=asset_name, key=dg.AssetKey([*prefix, asset_name]), fn=func, params=params, inputs=inputs,
        reads=tuple(dg.AssetKey.from_user_string(r) if isinstance(r, str) else r for r in reads),
        write_mode=mode, schema_policy=schema_policy, owner=owner, tags=dict(tags or {}),
        # Recorded by input *table* name: that is what a run's inputs are called years later.
        lineage_keys={table_name_for(inputs[k]) if k in inputs else k: v for k, v in keys.items()} or None,
        source_hash=src_hash, source_path=src_path, code_version=code_version or src_hash[:16], checks=tuple(checks),
        optional_output=optional_output,
        skip_if_inputs_missing=skip_if_inputs_missing if isinstance(skip_if_inputs_missing, bool)
        else frozenset(skip_if_inputs_missing),
        partitioned=partitions_def is not None,
    )


def _input_key(param: str, spec_in: dg.AssetIn | None, prefix: list[str]) -> dg.AssetKey:
    if spec_in is not None and spec_in.key is not None:
        return spec_in.key
    if spec_in is not None and spec_in.key_prefix is not None:
        return dg.AssetKey([*spec_in.key_prefix, param])
    return dg.AssetKey([*prefix, param])  # Dagster's rule: inputs share the asset's prefix


def _build_asset(spec: ComponentSpec, ins: Mapping[str, dg.AssetIn], partitions_def: dg.PartitionsDefinition | None,
                 group_name: str | None, description: str | None, kinds: set[str],
                 metadata: Mapping[str, Any]) -> dg.AssetsDefinition:
    from tracelake.lineage.record.materialisation import Materialisation

    deps = [dg.AssetDep(key, partition_mapping=ins[p].partition_mapping if p in ins else None)
            for p, key in spec.inputs.items()] + [dg.AssetDep(k) for k in spec.reads]
    asset_metadata = {**metadata, "tracelake/table": dg.MetadataValue.text(spec.table),
                      "tracelake/write_mode": spec.write_mode}
    if spec.lineage_keys:
        asset_metadata["tracelake/lineage_keys"] = dg.MetadataValue.json(dict(spec.lineage_keys))
    asset_spec = dg.AssetSpec(
        spec.key, deps=deps, description=description, metadata=asset_metadata, group_name=group_name,
        code_version=spec.code_version, owners=[spec.owner] if spec.owner else None, tags=dict(spec.tags),
        kinds=kinds, skippable=spec.optional_output,
    ).with_io_manager_key("delta_io_manager")
    check_specs = [dg.AssetCheckSpec(c.name, asset=spec.key, blocking=bool(c.blocking), description=c.description)
                   for c in spec.checks]

    # Dagster sees context, run config and resources; the inputs are read by the materialisation
    # at pinned Delta versions, so they are deps, not IO-manager inputs.
    def materialise(context):
        yield from Materialisation(spec, context, None).run()

    def materialise_with_config(context, config):
        yield from Materialisation(spec, context, config).run()

    materialise_with_config.__annotations__["config"] = spec.params.config_type
    body = materialise if spec.params.config_type is None else materialise_with_config
    body.__name__ = spec.key.to_python_identifier()
    body.__doc__ = description

    return dg.multi_asset(
        specs=[asset_spec], check_specs=check_specs or None, name=spec.key.to_python_identifier(),
        partitions_def=partitions_def, can_subset=True,
        required_resource_keys={"lakehouse", *spec.params.resources},
    )(body)
