"""The exceptions a materialisation can end with, each recorded under its own type so a reader
of the audit record (or of Dagster's event log) can tell a bug from a missing feed from a gate."""

from __future__ import annotations

__all__ = ["BlockingCheckFailed", "ConcurrentPartitionWriteError", "MissingInputError", "SourceMissing"]


class MissingInputError(RuntimeError):
    """An input table (or every requested partition of it) does not exist yet."""


class SourceMissing(RuntimeError):
    """A source component's data never arrived (a feed that did not deliver a partition).

    Raise it from a source component: the run is recorded *failed* with this type and message,
    the Dagster step and partition fail (red in the UI), and downstream does not run for it.
    """


class BlockingCheckFailed(RuntimeError):
    """A blocking declared test failed on the rows about to be written: nothing was committed."""


class ConcurrentPartitionWriteError(RuntimeError):
    """Two runs wrote the same new partition at the same time."""
