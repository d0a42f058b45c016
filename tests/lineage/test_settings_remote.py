"""A lakehouse on an object store with the journal on this machine's disk is said, not discovered after a loss."""

from __future__ import annotations

import logging

import pytest

from tracelake.lineage.lakehouse import _warn_if_journal_is_local_to_a_remote_lake
from tracelake.lineage.settings import load_settings

pytestmark = pytest.mark.unit


def test_an_object_store_lake_with_a_local_journal_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="tracelake.lakehouse"):
        _warn_if_journal_is_local_to_a_remote_lake(load_settings(env={}, home="s3a://lake/main"))
    (record,) = caplog.records
    assert "s3a://lake/main" in record.getMessage() and "TRACELAKE_JOURNAL_URL" in record.getMessage()


@pytest.mark.parametrize("env,home", [({"TRACELAKE_JOURNAL_URL": "postgresql://127.0.0.1/j"}, "s3a://lake/main"),
                                      ({}, "/tmp/some/lake")])
def test_a_shared_journal_or_a_local_lake_is_not_warned_about(caplog, env, home):
    with caplog.at_level(logging.WARNING, logger="tracelake.lakehouse"):
        _warn_if_journal_is_local_to_a_remote_lake(load_settings(env=env, home=home))
    assert caplog.records == []
