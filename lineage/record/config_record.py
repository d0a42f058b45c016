"""What a run records of its configuration: the run config and the resources it used.

Recorded so a diff between two runs can say "the config changed" and a reviewer can see how a
run was set up - and safe by construction, before it goes anywhere (journal, audit tables,
MLflow, Dagster):

- **resources**: the resource's type and the *names* of its fields always; a field's *value*
  only when the resource class declares the field safe to record::

      class VendorApiResource(dg.ConfigurableResource):
          tracelake_recorded_fields: ClassVar[tuple[str, ...]] = ("endpoint", "timeout_s")
          endpoint: str
          timeout_s: int = 30
          api_token: str            # recorded as "<not recorded>"

  Even a declared field is not recorded when Dagster resolved it from an environment variable
  (``dg.EnvVar("NAME")`` in code or ``{"env": "NAME"}`` in run config: recorded as
  ``"<from env NAME>"``), or when its value equals any environment variable's value (8+
  characters: ``"<from environment>"``). Recorded strings are still scanned for credentials.
  The values of fields that are not recorded and look secret (a credential-like name, from the
  environment, or a credential found in them) are remembered, so they are also removed from
  any later text (an error message that quotes them).
- **run config** (``dg.Config``): recorded, with every string scanned and secret-named keys
  redacted (``redact.redact_mapping``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracelake.lineage.record.redact import (
    FROM_ENVIRONMENT,
    NOT_RECORDED,
    env_value_names,
    env_var_name,
    find_secrets,
    from_env,
    is_secret_key,
    redact_mapping,
    remember_secret,
)

__all__ = ["RECORDED_FIELDS_ATTR", "describe_config", "describe_resource", "recorded_fields"]

RECORDED_FIELDS_ATTR = "tracelake_recorded_fields"
_MAX_DEPTH = 4


def describe_config(config: Any, resources: dict[str, Any]) -> dict[str, Any]:
    """Run config and resource configuration, as recorded (already redacted; the recorder
    redacts again, which costs a cache lookup per string)."""
    out: dict[str, Any] = {}
    if config is not None:
        raw = config.model_dump() if hasattr(config, "model_dump") else dict(config)
        out["config"] = redact_mapping(raw)
    described = {key: _describe_or_note(value, key) for key, value in resources.items()}
    if described:
        out["resources"] = redact_mapping(described)
    return out


def _describe_or_note(resource: Any, key: str) -> dict[str, Any]:
    try:
        return describe_resource(resource, key=key)
    except Exception as exc:  # a resource that cannot describe itself is noted, not fatal
        return {"type": type(resource).__name__, "error": f"not described: {type(exc).__name__}"}


def recorded_fields(resource: Any) -> tuple[str, ...]:
    """The fields ``resource``'s class declares safe to record (none unless it says so)."""
    declared = getattr(type(resource), RECORDED_FIELDS_ATTR, ())
    if isinstance(declared, str):
        declared = (declared,)
    return tuple(declared or ())


def _field_names(resource: Any) -> list[str]:
    fields = getattr(type(resource), "model_fields", None)
    if not isinstance(fields, Mapping):
        return []
    return [name for name in fields if not name.startswith("_")]


def _env_refs(resource: Any, key: str | None) -> dict[str, str]:
    """Fields Dagster resolves from environment variables: ``{field: variable name}``.

    Read through public API only: a field still holding a ``dg.EnvVar`` (a resource not yet
    initialised), and, for an initialised resource, its definition's configured defaults and the
    run config of the Dagster run (``get_resource_context()``), where an environment variable
    reads ``{"env": "NAME"}``.
    """
    refs: dict[str, str] = {}
    for name in _field_names(resource):
        env_name = env_var_name(getattr(resource, name, None))
        if env_name:
            refs[name] = env_name
    if key is None:  # a nested resource's context is its parent's: nothing reliable to read
        return refs
    try:
        context = resource.get_resource_context()
    except Exception:  # not initialised by Dagster (a resource built by hand)
        return refs
    sources: list[Any] = []
    try:
        sources.append(context.resource_def.config_schema.default_value)
    except Exception:
        pass
    try:
        run = context.dagster_run
        if run is not None:
            sources.append(((run.run_config or {}).get("resources") or {}).get(key, {}).get("config"))
    except Exception:
        pass
    for source in sources:
        if isinstance(source, Mapping):
            for name, value in source.items():
                if isinstance(value, Mapping) and isinstance(value.get("env"), str):
                    refs[str(name)] = value["env"]
    return refs


def describe_resource(resource: Any, *, key: str | None = None, _depth: int = 0) -> dict[str, Any]:
    """``{"type": ..., <field>: <value or marker>, ...}`` for one resource (see the module doc)."""
    out: dict[str, Any] = {"type": type(resource).__name__}
    names = _field_names(resource)
    if not names:
        return out
    allowed = set(recorded_fields(resource))
    env = _env_refs(resource, key)
    for name in names:
        try:
            value = getattr(resource, name)
        except Exception:
            out[name] = NOT_RECORDED
            continue
        if name not in allowed:
            out[name] = NOT_RECORDED
            _remember_unrecorded(name, value, name in env)
        elif name in env:
            out[name] = from_env(env[name])
        else:
            out[name] = _recorded_value(value, _depth)
    return out


def _recorded_value(value: Any, depth: int) -> Any:
    if depth >= _MAX_DEPTH:
        return NOT_RECORDED
    if env_var_name(value):
        return from_env(env_var_name(value))
    if _field_names(value) and hasattr(value, "model_dump"):  # a nested resource: its own allow-list
        return describe_resource(value, _depth=depth + 1)
    if isinstance(value, str):
        return FROM_ENVIRONMENT if env_value_names(value) else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _recorded_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_recorded_value(v, depth + 1) for v in value]
    if hasattr(value, "model_dump"):
        try:
            return _recorded_value(value.model_dump(), depth + 1)
        except Exception:
            return NOT_RECORDED
    return str(value)


def _remember_unrecorded(name: str, value: Any, from_environment: bool, depth: int = 0) -> None:
    """A value that is not recorded may still be quoted by an error message: when it looks
    secret, remember it so that text is scrubbed too."""
    if depth > _MAX_DEPTH or value is None:
        return
    if env_var_name(value):  # not resolved yet: remember what it will resolve to
        value, from_environment = value.get_value(), True
        if value is None:
            return
    if isinstance(value, Mapping):
        for k, v in value.items():
            _remember_unrecorded(str(k), v, from_environment or is_secret_key(name), depth + 1)
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            _remember_unrecorded(name, v, from_environment, depth + 1)
        return
    if _field_names(value) and hasattr(value, "model_dump"):
        for field in _field_names(value):
            _remember_unrecorded(field, getattr(value, field, None), from_environment, depth + 1)
        return
    if not isinstance(value, str):
        if from_environment or is_secret_key(name):
            remember_secret(str(value))
        return
    if from_environment or is_secret_key(name) or env_value_names(value):
        remember_secret(value)
    else:
        for secret in find_secrets(value):
            remember_secret(secret)
