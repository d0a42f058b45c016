"""A commit that lost a race with another writer is retried; anything else surfaces at once (Spark-free)."""

from __future__ import annotations

import pytest

from tracelake.lineage.record import tables
from tracelake.lineage.record.tables import TableWriteError

pytestmark = pytest.mark.unit


class ConcurrentAppendException(Exception):
    """Named as Delta names it: the retry classifies by name and message, as py4j hands it over."""


class FakeWriter:
    def __init__(self, outcomes: list[BaseException | None], saves: list[str]):
        self.outcomes, self.saves = outcomes, saves

    def format(self, _):
        return self

    def mode(self, _):
        return self

    def option(self, *_):
        return self

    def partitionBy(self, *_):
        return self

    def save(self, path: str) -> None:
        self.saves.append(path)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


class FakeFrame:
    def __init__(self, outcomes: list[BaseException | None]):
        self.saves: list[str] = []
        self._outcomes = outcomes

    @property
    def write(self) -> FakeWriter:
        return FakeWriter(self._outcomes, self.saves)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(tables.time, "sleep", lambda _s: None)


def save(frame: FakeFrame, attempts: int = 8) -> None:
    tables._save_retrying("/lake/tables/t", frame, "append", {}, partitioned=True, max_attempts=attempts)


def test_a_commit_that_lost_a_race_is_retried_until_it_lands():
    frame = FakeFrame([ConcurrentAppendException("Files were added to partition _tl_partition=2026-01-01"),
                       ConcurrentAppendException("again"), None])
    save(frame)
    assert len(frame.saves) == 3


def test_a_race_lost_every_time_gives_up_after_the_last_attempt():
    frame = FakeFrame([ConcurrentAppendException("lost") for _ in range(3)])
    with pytest.raises(ConcurrentAppendException):
        save(frame, attempts=3)
    assert len(frame.saves) == 3


def test_any_other_error_is_raised_at_once_and_a_schema_mismatch_says_what_to_do():
    frame = FakeFrame([RuntimeError("disk on fire")])
    with pytest.raises(RuntimeError, match="disk on fire"):
        save(frame)
    assert len(frame.saves) == 1
    frame = FakeFrame([RuntimeError("[DELTA_FAILED_TO_MERGE_FIELDS] Failed to merge fields 'fare' and 'fare'")])
    with pytest.raises(TableWriteError, match="schema"):
        save(frame)
    assert len(frame.saves) == 1
