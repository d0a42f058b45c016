"""SliceReader.table_at: the newest version from the log, each version's snapshot opened once."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from tracelake.lineage.layout import Layout
from tracelake.lineage.query import slices
from tracelake.lineage.query.slices import SliceError, SliceReader

pytestmark = pytest.mark.unit


def test_a_moved_table_is_seen_and_an_unchanged_one_is_not_reopened(tmp_path, monkeypatch):
    layout = Layout(str(tmp_path))
    path = layout.table("src")
    write_deltalake(path, pa.table({"x": [1, 2]}))
    opened: list[tuple] = []
    real = slices.DeltaTable

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            opened.append((args[0], kwargs.get("version")))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(slices, "DeltaTable", Counting)
    reader = SliceReader(layout)
    assert reader.table_at("src").version == 0
    assert reader.table_at("src").version == 0
    assert opened == [(path, 0)]                      # the second question reused the snapshot
    write_deltalake(path, pa.table({"x": [3]}), mode="append")
    assert reader.table_at("src").version == 1        # the newest version moved: seen at once
    assert reader.table_at("src", 0).version == 0     # an explicit older version: still the cached one
    assert opened == [(path, 0), (path, 1)]
    with pytest.raises(SliceError, match=r"src has no version 5: its versions are 0\.\.1"):
        reader.table_at("src", 5)
    with pytest.raises(SliceError, match="no table 'nope'"):
        reader.table_at("nope")
