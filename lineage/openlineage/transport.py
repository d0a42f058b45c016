"""Where events go: the OpenLineage client's own configuration, or JSON lines in the lakehouse.

The transport is whatever the official client resolves from its standard configuration - an
``openlineage.yml`` (``$OPENLINEAGE_CONFIG``, ``./openlineage.yml``, ``~/.openlineage/``),
``OPENLINEAGE__TRANSPORT__*`` variables, or ``OPENLINEAGE_URL`` (+ ``OPENLINEAGE_ENDPOINT``,
``OPENLINEAGE_API_KEY``) - so HTTP to Marquez, DataHub or any backend, Kafka, or a composite of
several, is configuration only: whenever the client would find a transport on its own (the
rules are mirrored in ``settings.openlineage_client_config``), that transport is used. With none,
where the client would print events to the console, Tracelake's default is the client's ``file``
transport appending JSON lines to ``<openlineage_dir>/events.jsonl`` inside the lakehouse: the
embedded setup publishes without a server, and the file can be replayed into a backend later.

Three client behaviours are handled here rather than left to surprise:
- ``OpenLineageClient()`` writes ``OPENLINEAGE__TRANSPORT__TRANSPORTS__DEFAULT_HTTP__*`` aliases
  of ``OPENLINEAGE_URL`` into ``os.environ``; the aliases are removed again, so creating a client
  never changes the process's environment (or what the next client resolves);
- ``OPENLINEAGE_DISABLED=true`` gives every client a no-op transport whose ``emit`` returns as
  if it had delivered: :func:`send` refuses it instead, so nothing is counted as delivered;
- the ``http`` transport is synchronous and raises after its own retries (urllib3, 5 by default);
  :func:`send` adds Tracelake's bounded retries on top and reports the last error, and it is only
  ever called from a background thread or a command - never on a materialisation's path.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracelake.lineage.settings import Settings, openlineage_client_config

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient

__all__ = ["DISABLED_MESSAGE", "DeliveryFailed", "default_events_file", "describe", "file_client", "is_disabled",
           "make_client", "send"]

log = logging.getLogger("tracelake.openlineage")
DISABLED_MESSAGE = ("OpenLineage is disabled (OPENLINEAGE_DISABLED=true, or a noop transport): the client "
                    "sends nothing")
_env_lock = threading.Lock()


class DeliveryFailed(Exception):
    """An event could not be delivered after every retry (the message says why)."""


def default_events_file(settings: Settings) -> Path:
    return Path(settings.openlineage_dir) / "events.jsonl"


def make_client(settings: Settings) -> OpenLineageClient:
    """A client with the standard configuration, or the JSON-lines default (see the module doc)."""
    from openlineage.client import OpenLineageClient

    if settings.openlineage_configured:
        with _env_lock:
            before = {k for k in os.environ if k.startswith("OPENLINEAGE__")}
            try:
                client = OpenLineageClient()
            finally:
                for key in [k for k in os.environ if k.startswith("OPENLINEAGE__") and k not in before]:
                    del os.environ[key]
        return client
    path = default_events_file(settings)
    transport = openlineage_client_config().get("transport")
    if isinstance(transport, dict) and transport:
        # The client ignores a transport section without a type (it would print to the console):
        # said, so a forgotten OPENLINEAGE__TRANSPORT__TYPE is not mistaken for a working backend.
        log.warning("OpenLineage transport configuration without a type (keys: %s) is ignored; events go to %s",
                    ", ".join(sorted(transport)), path)
    return file_client(path)


def file_client(path: Path) -> OpenLineageClient:
    """A client appending JSON lines to ``path`` with the client's own ``file`` transport. The
    transport is handed over as an object, so no ``OPENLINEAGE__TRANSPORT__*`` key of the
    environment is merged into it; the rest of the client's configuration (filters, tags,
    facets) still applies, as it does to any transport."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    path.parent.mkdir(parents=True, exist_ok=True)
    return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(path), append=True)))


def is_disabled(client: OpenLineageClient) -> bool:
    """Does ``client`` emit nothing? ``OPENLINEAGE_DISABLED=true`` (or a ``noop`` transport) gives
    it the no-op transport, whose ``emit`` returns as if it had delivered."""
    return getattr(client.transport, "kind", None) == "noop"


def describe(client: OpenLineageClient) -> dict[str, Any]:
    """What the client sends to, for ``tracelake openlineage status`` (no credentials)."""
    transport = client.transport
    out: dict[str, Any] = {"kind": getattr(transport, "kind", type(transport).__name__)}
    for attr_name in ("url", "endpoint", "timeout"):
        value = getattr(transport, attr_name, None)
        if value is not None:
            out[attr_name] = str(value)
    config = getattr(transport, "config", None)
    path = getattr(config, "log_file_path", None)
    if path:
        out["file"] = str(path)
    return out


def send(client: OpenLineageClient, event: Any, *, retries: int, backoff_s: float = 0.5,
         stop: Callable[[], bool] | None = None) -> None:
    """Emit one event, retrying ``retries`` times with exponential backoff; raise
    :class:`DeliveryFailed` with the last error when every attempt failed (``stop()`` ends the
    waiting early, e.g. at process exit). A disabled client delivers nothing, so it fails too:
    nothing may be counted as delivered, or taken out of the outbox, because of it."""
    if is_disabled(client):
        raise DeliveryFailed(DISABLED_MESSAGE)
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            client.emit(event)
            return
        except Exception as exc:  # any transport error counts as one failed attempt; the last is reported
            last = exc
            log.debug("OpenLineage delivery attempt %d failed: %s", attempt + 1, exc)
        if attempt < retries:
            deadline = time.monotonic() + backoff_s * (2 ** attempt)
            while time.monotonic() < deadline:
                if stop is not None and stop():
                    raise DeliveryFailed(f"{type(last).__name__}: {str(last)[:300]} (stopped while retrying)")
                time.sleep(0.05)
    raise DeliveryFailed(f"{type(last).__name__}: {str(last)[:300]} (after {retries + 1} attempts)")
