"""Dataset names both ways, by the OpenLineage naming convention the Spark listener also uses.

A local Delta table is namespace ``file`` and its absolute path as name (no ``file:`` prefix, no
trailing slash); an object-store table is ``s3://bucket`` (``abfss://container@account``,
``gs://bucket``) and its key inside it, without a leading slash. Publishing and receiving use the same rule, so a table
written by a Tracelake component and read by a ``spark-submit`` job with the OpenLineage
listener is *one* dataset in Marquez or DataHub, and an incoming event's dataset is found again
as a lakehouse table.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from urllib.parse import unquote

from tracelake.lineage.layout import Layout
from tracelake.lineage.settings import is_local_uri, to_local_path

__all__ = ["MODEL_NAMESPACE", "dataset_id", "dataset_uri", "table_for_uri"]

# Registered models are datasets too: namespace ``mlflow``, name = the registered model's name,
# version = its registry version (OpenLineage has no naming convention for model registries).
MODEL_NAMESPACE = "mlflow"

_SCHEMES = {"s3a": "s3", "s3n": "s3", "wasbs": "abfss", "abfs": "abfss"}


@lru_cache(maxsize=65536)
def dataset_id(uri: str) -> tuple[str, str]:
    """(namespace, name) of the table at ``uri`` (a local path or an object-store URI)."""
    if is_local_uri(uri):
        return "file", os.path.normpath(str(to_local_path(uri))) or "/"
    scheme, _, rest = uri.partition("://")
    authority, _, path = rest.partition("/")
    return f"{_SCHEMES.get(scheme, scheme)}://{authority}", path.strip("/")


def dataset_uri(namespace: str, name: str) -> str:
    """The location an OpenLineage dataset names (inverse of :func:`dataset_id`)."""
    if namespace in ("file", "") or namespace.startswith("file:"):
        return os.path.normpath(unquote(name if not name.startswith("file:") else name[len("file:"):]))
    return f"{namespace.rstrip('/')}/{name.lstrip('/')}"


def _canonical(uri: str) -> str:
    if is_local_uri(uri):
        return os.path.realpath(str(to_local_path(uri)))
    scheme, _, rest = uri.partition("://")
    return f"{_SCHEMES.get(scheme, scheme)}://{rest.rstrip('/')}"


_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def table_for_uri(layout: Layout, uri: str) -> str | None:
    """The lakehouse table at ``uri`` (``<home>/tables/<name>``), or None for anything else."""
    root = _canonical(layout.tables_root).rstrip("/") + "/"
    here = _canonical(uri)
    if not here.startswith(root):
        return None
    name = here[len(root):].strip("/")
    return name if _TABLE.match(name) else None
