"""What events need from around them: the repository's URL, table schemas by version, and the
:class:`~tracelake.lineage.openlineage.events.EventBuilder` made from these for a lakehouse
(shared by the live publisher, ``export`` and ``resend``, so all three build the same events).
Light to import: the client library loads only when a builder is made."""

from __future__ import annotations

import logging
import subprocess
from functools import lru_cache
from typing import TYPE_CHECKING

from tracelake.lineage.settings import Settings, repo_root

if TYPE_CHECKING:
    from tracelake.lineage.openlineage.events import EventBuilder
    from tracelake.lineage.record.audit_store import AuditStore

__all__ = ["make_builder", "repository_url", "schema_lookup"]

log = logging.getLogger("tracelake.openlineage")


@lru_cache(maxsize=8)
def repository_url(path: str) -> str | None:
    """The git remote (``origin``) of the repository at ``path``, else ``file://`` of its root."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() or None if out.returncode == 0 else None

    remote = git("remote", "get-url", "origin")
    if remote:
        return remote
    top = git("rev-parse", "--show-toplevel")
    return f"file://{top}" if top else None


def schema_lookup(maxsize: int = 4096):
    """``(path, version) -> Delta schema JSON`` from the table's log, cached. A table version that
    cannot be read any more (vacuumed history) gives None: the event goes out without that one
    schema facet, and the problem is logged."""
    from tracelake.lineage.record import delta_meta

    @lru_cache(maxsize=maxsize)
    def schema_of(path: str, version: int) -> str | None:
        try:
            return delta_meta.schema_at(path, version)
        except Exception as exc:  # reported; the event is still sent without the facet
            log.warning("no schema for %s@v%s in its OpenLineage event: %s", path, version, exc)
            return None

    return schema_of


def make_builder(settings: Settings, store: AuditStore, schema_of=None) -> EventBuilder:
    from tracelake.lineage.openlineage.events import EventBuilder, EventContext

    return EventBuilder(EventContext(layout=store.layout, namespace=settings.openlineage_namespace,
                                     repo_url=repository_url(str(repo_root())), schema_of=schema_of or schema_lookup()))
