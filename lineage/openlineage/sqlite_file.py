"""The small SQLite files OpenLineage keeps beside its events (the outbox, the received events).

Each is one file in WAL mode - a publishing run and ``tracelake openlineage status`` or the
receiver and ``import`` may use it at once - whose schema is created on first use, and whose
``synchronous`` level says how durable a commit must be before it returns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

__all__ = ["SqliteFile"]


class SqliteFile:
    """Base of a store kept in ``directory/name``: ``_con()`` yields an autocommit connection
    (the folder and the schema are created by the first one)."""

    def __init__(self, directory: str | Path, name: str, schema: str, *, synchronous: str):
        self.directory = Path(directory)
        self.path = self.directory / name
        self._schema = schema
        self._synchronous = synchronous
        self._ready = False

    @contextmanager
    def _con(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self.directory.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=60, isolation_level=None)) as con:
            if not self._ready:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(self._schema)
                self._ready = True
            con.execute(f"PRAGMA synchronous={self._synchronous}")
            yield con
