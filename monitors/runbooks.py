"""Runbook links that resolve when they are used, not when a module is imported.

A check or an alert policy declares ``runbook("fare-range")`` - an anchor in the runbook. The
URL is built from ``TRACELAKE_RUNBOOK_BASE`` at the moment a check result or an alert is
produced, so the same definitions point at your wiki in production and at the runbook this
repository ships (served by ``tracelake ui`` at ``http://127.0.0.1:3030/runbooks``) locally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DEFAULT_RUNBOOK_BASE", "Runbook", "runbook", "runbook_base"]

DEFAULT_RUNBOOK_BASE = "http://127.0.0.1:3030/runbooks"


def runbook_base() -> str:
    return (os.environ.get("TRACELAKE_RUNBOOK_BASE") or DEFAULT_RUNBOOK_BASE).rstrip("/")


@dataclass(frozen=True)
class Runbook:
    """A section of the runbook; ``str()`` gives its URL under the configured base."""

    anchor: str

    @property
    def url(self) -> str:
        return f"{runbook_base()}#{self.anchor}"

    def __str__(self) -> str:
        return self.url


def runbook(anchor: str) -> Runbook:
    return Runbook(anchor.lstrip("#"))
