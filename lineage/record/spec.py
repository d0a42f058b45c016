"""What a component declares: its function, parameters, inputs, output table and tests.

``@component`` builds one :class:`ComponentSpec` and nothing else happens at import. The spec
keeps the raw function, so a transform can be unit-tested DataFrame in, DataFrame out, without a
lakehouse (``component_spec(asset).fn(df)``), and everything a materialisation needs to know.

Parameters are classified the way Dagster does it: ``context`` first; a ``ComponentRun``
annotation gets the run (metrics, models, ad hoc reads); ``dg.Config`` subclasses are run config
(named ``config``); ``ConfigurableResource``/``ConfigurableIOManager`` subclasses are resources
(the parameter name is the resource key); everything else is an upstream asset, read at a pinned
Delta version by the materialisation.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from tracelake.lineage.record.run import ComponentRun
from tracelake.lineage.record.tables import SchemaPolicy, WriteMode

__all__ = ["ComponentSpec", "Parameters", "classify_parameters", "table_name_for"]


def table_name_for(key: dg.AssetKey) -> str:
    return key.to_python_identifier()


def _is_subclass(annotation: Any, base: type) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return inspect.isclass(annotation) and issubclass(annotation, base)


@dataclass(frozen=True)
class Parameters:
    """How the function's parameters are filled."""

    wants_context: bool
    run: str | None                  # the ComponentRun parameter
    config_type: type | None         # the dg.Config subclass of the ``config`` parameter
    resources: tuple[str, ...]       # resource keys (= parameter names)
    inputs: tuple[str, ...]          # upstream assets, in the function's order


def classify_parameters(func: Callable, asset_name: str) -> Parameters:
    hints = typing.get_type_hints(func, include_extras=True)
    params = list(inspect.signature(func).parameters.values())
    wants_context = bool(params) and params[0].name == "context"
    run: str | None = None
    config_type: type | None = None
    resources: list[str] = []
    inputs: list[str] = []
    for p in params[1:] if wants_context else params:
        ann = hints.get(p.name, p.annotation)
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            raise dg.DagsterInvalidDefinitionError(f"@component {asset_name}: *args/**kwargs are not supported")
        if _is_subclass(ann, ComponentRun):
            run = p.name
        elif _is_subclass(ann, dg.ConfigurableResource) or _is_subclass(ann, dg.ConfigurableIOManager):
            resources.append(p.name)
        elif _is_subclass(ann, dg.Config):  # after resources: every resource is also a Config
            if p.name != "config":
                raise dg.DagsterInvalidDefinitionError(
                    f"@component {asset_name}: name the run-config parameter `config` (Dagster's rule), not {p.name!r}")
            config_type = typing.get_args(ann)[0] if typing.get_origin(ann) is typing.Annotated else ann
        else:
            inputs.append(p.name)
    return Parameters(wants_context, run, config_type, tuple(resources), tuple(inputs))


@dataclass(frozen=True)
class ComponentSpec:
    """Everything declared by one ``@component`` (see the decorator for what each field means)."""

    name: str
    key: dg.AssetKey
    fn: Callable[..., Any]
    params: Parameters
    inputs: Mapping[str, dg.AssetKey]          # parameter -> upstream asset
    reads: tuple[dg.AssetKey, ...]             # tables the function reads itself (graph edges)
    write_mode: WriteMode
    schema_policy: SchemaPolicy
    owner: str | None
    tags: Mapping[str, str]
    lineage_keys: Mapping[str, Sequence[str]] | None   # by input *table* name
    source_hash: str
    source_path: str | None
    code_version: str
    checks: tuple[Any, ...]
    optional_output: bool
    skip_if_inputs_missing: bool | frozenset[str]
    partitioned: bool

    @property
    def table(self) -> str:
        return table_name_for(self.key)

    def input_table(self, param: str) -> str:
        return table_name_for(self.inputs[param])

    def skips_when_missing(self, param: str) -> bool:
        """Does a missing input ``param`` mean "nothing to do" (skipped) rather than a failure?"""
        flag = self.skip_if_inputs_missing
        return flag is True or (isinstance(flag, frozenset) and param in flag)

    @property
    def quarantines(self) -> bool:
        from tracelake.lineage.record.quarantine_marks import quarantine_rules

        return bool(quarantine_rules(self.checks))
