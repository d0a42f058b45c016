"""One place where Tracelake reads its environment.

Every knob has a documented default so the embedded setup needs no configuration at all, and
the scale-out setup differs only by environment variables (or the same fields passed to the
Dagster resources). Nothing here is read at import time: call :func:`load_settings`.

| variable | default | meaning |
|---|---|---|
| ``TRACELAKE_HOME`` | ``./lakehouse`` | lakehouse root (local folder or ``s3a://``, ``abfss://``, ``gs://`` URI) |
| ``TRACELAKE_RETENTION_DAYS`` | ``2555`` (7 years) | Delta log and deleted-file retention of every table |
| ``TRACELAKE_JOURNAL_DIR`` | ``$TRACELAKE_HOME/_journal`` (local) | durable audit journal (SQLite, local disk) |
| ``TRACELAKE_JOURNAL_URL`` | unset | ``postgresql://user[:password]@host:port/db``: the journal in PostgreSQL instead (off the worker's disk; see ``record/journal_pg.py``) |
| ``TRACELAKE_SPARK_CONF`` | unset | more Spark options, ``key=value;key=value`` (e.g. ``spark.cores.max=2``) |
| ``TRACELAKE_S3A_JARS_DIR`` | ``<repo>/jars/s3a-lib`` | hadoop-aws + AWS SDK jars (``./install.sh --cluster``), loaded when the lakehouse is on ``s3a://`` |
| ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ALLOW_HTTP`` | unset | the object store, read by delta-rs and pyarrow themselves and handed to Spark's s3a |
| ``TRACELAKE_SPARK_MASTER`` | ``local[*]`` | Spark master URL |
| ``TRACELAKE_SPARK_DRIVER_MEMORY`` | ``4g`` | driver memory |
| ``TRACELAKE_SPARK_SHUFFLE_PARTITIONS`` | ``8`` | ``spark.sql.shuffle.partitions`` |
| ``TRACELAKE_JARS_DIR`` | ``<repo>/jars/lib`` | the Delta jars fetched by ``install.sh`` |
| ``MLFLOW_TRACKING_URI`` | ``sqlite:///$TRACELAKE_HOME/mlflow/mlflow.db`` | MLflow tracking store |
| ``TRACELAKE_MLFLOW_UI_URL`` | ``http://127.0.0.1:5000`` | base URL used for MLflow links |
| ``TRACELAKE_AUDIT_FLUSH_RECORDS`` | ``100`` | flush the journal to Delta once this many records wait |
| ``TRACELAKE_AUDIT_FLUSH_SECONDS`` | ``300`` | ... or once the oldest waiting record is this old |
| ``TRACELAKE_ANCHOR_DIR`` | ``~/.tracelake/anchors`` | signed chain heads, kept outside the lakehouse |
| ``TRACELAKE_ANCHOR_KEY`` | a key file in the anchor dir | the HMAC key that signs them (a secret) |
| ``TRACELAKE_OPENLINEAGE`` | ``on`` | publish every component run as OpenLineage events (``off``: publish nothing) |
| ``TRACELAKE_OPENLINEAGE_DIR`` | ``$TRACELAKE_HOME/openlineage`` (local) | default JSON-lines events, the outbox of undelivered events, received events |
| ``TRACELAKE_OPENLINEAGE_NAMESPACE`` | ``tracelake`` | OpenLineage job namespace of the components |
| ``TRACELAKE_OPENLINEAGE_QUEUE`` | ``10000`` | events waiting for the background sender; beyond it they go to the outbox |
| ``TRACELAKE_OPENLINEAGE_RETRIES`` | ``2`` | retries per event (after the transport's own) before it goes to the outbox |
| ``TRACELAKE_OPENLINEAGE_PORT`` | ``5055`` | port of ``tracelake openlineage serve`` (bound to 127.0.0.1 unless told otherwise) |
| ``TRACELAKE_OPENLINEAGE_JARS_DIR`` | ``<repo>/jars/openlineage-lib`` | the OpenLineage Spark listener jar fetched by ``install.sh`` |
| ``OPENLINEAGE_URL``, ``OPENLINEAGE_CONFIG``, ``OPENLINEAGE__*``, ``openlineage.yml`` | unset | the OpenLineage client's own configuration; when it gives a transport, that replaces the default JSON lines |
| ``OPENLINEAGE_DISABLED`` | unset | ``true``: publish nothing (the client's own switch) |
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "Settings",
    "arrow_filesystem",
    "is_local_uri",
    "load_settings",
    "openlineage_client_config",
    "openlineage_disabled",
    "repo_root",
    "to_local_path",
]

DEFAULT_RETENTION_DAYS = 2555  # 7 years: a typical model-risk record-keeping horizon


def repo_root() -> Path:
    """The source checkout this package is installed from (editable install)."""
    return Path(__file__).resolve().parents[1]


def is_local_uri(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def to_local_path(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    return Path(uri)


def arrow_filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path) of a URI. Spark's ``s3a://`` is S3 to pyarrow (which knows only
    ``s3://``); the endpoint and keys come from the same AWS_* variables delta-rs reads."""
    from pyarrow import fs as pafs

    if uri.startswith("s3a://"):
        uri = "s3://" + uri[len("s3a://"):]
    return pafs.FileSystem.from_uri(uri)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; unset it or give a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be {'positive' if minimum == 1 else f'at least {minimum}'}")
    return value


@dataclass(frozen=True)
class Settings:
    home: str
    retention_days: int
    journal_dir: str
    spark_master: str
    spark_driver_memory: str
    spark_shuffle_partitions: int
    jars_dir: str
    mlflow_tracking_uri: str
    mlflow_ui_url: str
    flush_records: int
    flush_seconds: int
    anchor_dir: str | None = None
    openlineage: bool = True
    openlineage_dir: str = ""
    openlineage_namespace: str = "tracelake"
    openlineage_queue: int = 10000
    openlineage_retries: int = 2
    openlineage_port: int = 5055
    openlineage_jars_dir: str = ""
    # True when the OpenLineage client finds a transport of its own (OPENLINEAGE_URL, or a transport
    # type in OPENLINEAGE_CONFIG / an openlineage.yml / OPENLINEAGE__TRANSPORT[__*]): it then decides
    # the transport; otherwise events go to JSON lines under ``openlineage_dir``.
    openlineage_configured: bool = False
    # Scale-out profile (docs/scaling.md): the journal in PostgreSQL, more Spark options, s3a jars.
    journal_url: str = ""
    spark_conf: str = ""
    s3a_jars_dir: str = ""

    @property
    def retention_interval(self) -> str:
        return f"interval {self.retention_days} days"


def _absolute_home(raw: str) -> str:
    if is_local_uri(raw):
        return str(to_local_path(raw).expanduser().resolve())
    return raw.rstrip("/")


def _default_journal_dir(home: str) -> str:
    if is_local_uri(home):
        return str(Path(_absolute_home(home)) / "_journal")
    # The journal must be on a local durable disk; an object store cannot host SQLite.
    return str(Path.home() / ".tracelake" / "journal")


def _default_mlflow_uri(home: str) -> str:
    if is_local_uri(home):
        return f"sqlite:///{Path(_absolute_home(home)) / 'mlflow' / 'mlflow.db'}"
    return str(Path.home() / ".tracelake" / "mlruns")


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise ValueError(f"{name}={env.get(name)!r}: use on or off")


def _default_openlineage_dir(home: str) -> str:
    if is_local_uri(home):
        return str(Path(_absolute_home(home)) / "openlineage")
    # The outbox and the received-events store are SQLite files: they need a local disk.
    return str(Path.home() / ".tracelake" / "openlineage")


# -- the OpenLineage client's own configuration, resolved by its rules --------------------------
# These mirror openlineage-python (openlineage/client/client.py: ``_resolve_transport``, ``config``,
# ``_find_yaml_config_path``, ``_load_config_from_env_variables``) instead of importing it: the
# client package costs ~0.4 s to import, and settings are read by every command. Mirrored so
# that whatever transport the client would use on its own is what Tracelake uses - the JSON-lines
# default replaces only the client's own fallback (printing events to the console).
_OL_ENV_PREFIX = "OPENLINEAGE__"


def openlineage_disabled(env: Mapping[str, str]) -> bool:
    """``OPENLINEAGE_DISABLED=true``, read exactly as the client reads it (it then emits nothing)."""
    return (env.get("OPENLINEAGE_DISABLED") or "").lower().strip() == "true"


def _openlineage_yaml(env: Mapping[str, str]) -> Path | None:
    """The client's configuration file: the first readable of ``$OPENLINEAGE_CONFIG``,
    ``./openlineage.yml`` and ``~/.openlineage/openlineage.yml``."""
    try:
        cwd: str | None = os.getcwd()
    except FileNotFoundError:  # the working directory was removed: it holds no openlineage.yml
        cwd = None
    candidates = (env.get("OPENLINEAGE_CONFIG"), cwd and os.path.join(cwd, "openlineage.yml"),
                  os.path.join(os.path.expanduser("~/.openlineage"), "openlineage.yml"))
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.R_OK):
            return Path(candidate)
    return None


def _openlineage_env_config(env: Mapping[str, str]) -> dict[str, Any]:
    """``OPENLINEAGE__A__B=value`` as ``{"a": {"b": value}}``: keys lower-cased, values parsed as
    JSON when they are JSON; sorted in reverse so a whole section (``OPENLINEAGE__TRANSPORT='{...}'``)
    replaces the single keys of that section, as in the client."""
    config: dict[str, Any] = {}
    for key, raw in sorted(((k, v) for k, v in env.items() if k.startswith(_OL_ENV_PREFIX)), reverse=True):
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parts = [part.lower() for part in key[len(_OL_ENV_PREFIX):].split("__")]
        node = config
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return config


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` wins; nested sections merge (the client's ``deep_merge_dicts``)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def openlineage_client_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The configuration the OpenLineage client builds: its file over its ``OPENLINEAGE__*``
    variables (the file wins where both set a key). An unreadable or empty file counts as none."""
    env = os.environ if env is None else env
    from_file: Any = {}
    path = _openlineage_yaml(env)
    if path is not None:
        import yaml

        try:
            from_file = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):  # the client logs the same problem and goes on without the file
            from_file = {}
    return _deep_merge(_openlineage_env_config(env), from_file if isinstance(from_file, dict) else {})


def _openlineage_configured(env: Mapping[str, str]) -> bool:
    """Does the client find a transport of its own? Yes when its configuration (file or
    ``OPENLINEAGE__*``, including ``OPENLINEAGE__TRANSPORT='{json}'``) names a transport ``type``,
    or ``OPENLINEAGE_URL`` is set - its rules, in its order. A transport section without a type
    is no transport to the client either (``transport.make_client`` warns about it)."""
    transport = openlineage_client_config(env).get("transport")
    if isinstance(transport, dict):
        if transport.get("type"):
            return True
    elif transport:
        return True  # not a section at all: the client reports what is wrong with it
    return bool(env.get("OPENLINEAGE_URL"))


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Resolve settings from ``env`` (default ``os.environ``), then apply non-None overrides."""
    env = os.environ if env is None else env
    home = _absolute_home(overrides.pop("home", None) or env.get("TRACELAKE_HOME") or "./lakehouse")
    base = Settings(
        home=home,
        retention_days=_int(env, "TRACELAKE_RETENTION_DAYS", DEFAULT_RETENTION_DAYS),
        journal_dir=env.get("TRACELAKE_JOURNAL_DIR") or _default_journal_dir(home),
        spark_master=env.get("TRACELAKE_SPARK_MASTER") or "local[*]",
        spark_driver_memory=env.get("TRACELAKE_SPARK_DRIVER_MEMORY") or "4g",
        spark_shuffle_partitions=_int(env, "TRACELAKE_SPARK_SHUFFLE_PARTITIONS", 8),
        jars_dir=env.get("TRACELAKE_JARS_DIR") or str(repo_root() / "jars" / "lib"),
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or _default_mlflow_uri(home),
        mlflow_ui_url=(env.get("TRACELAKE_MLFLOW_UI_URL") or "http://127.0.0.1:5000").rstrip("/"),
        flush_records=_int(env, "TRACELAKE_AUDIT_FLUSH_RECORDS", 100),
        flush_seconds=_int(env, "TRACELAKE_AUDIT_FLUSH_SECONDS", 300),
        anchor_dir=env.get("TRACELAKE_ANCHOR_DIR") or None,
        openlineage=_switch(env, "TRACELAKE_OPENLINEAGE", True) and not openlineage_disabled(env),
        openlineage_dir=env.get("TRACELAKE_OPENLINEAGE_DIR") or _default_openlineage_dir(home),
        openlineage_namespace=env.get("TRACELAKE_OPENLINEAGE_NAMESPACE") or "tracelake",
        openlineage_queue=_int(env, "TRACELAKE_OPENLINEAGE_QUEUE", 10000),
        openlineage_retries=_int(env, "TRACELAKE_OPENLINEAGE_RETRIES", 2, minimum=0),
        openlineage_port=_int(env, "TRACELAKE_OPENLINEAGE_PORT", 5055),
        openlineage_jars_dir=env.get("TRACELAKE_OPENLINEAGE_JARS_DIR") or str(repo_root() / "jars" / "openlineage-lib"),
        openlineage_configured=_openlineage_configured(env),
        journal_url=env.get("TRACELAKE_JOURNAL_URL") or "",
        spark_conf=env.get("TRACELAKE_SPARK_CONF") or "",
        s3a_jars_dir=env.get("TRACELAKE_S3A_JARS_DIR") or str(repo_root() / "jars" / "s3a-lib"),
    )
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
