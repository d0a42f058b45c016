"""An overwriting run's quarantine commit is an append (``outputs.commit_quarantine``), yet it is
rolled back with the run's write mode, ``overwrite``: only what a commit replaced may come back,
or every earlier set-aside row would be doubled. delta-rs only."""

from __future__ import annotations

import json

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from tracelake.lineage.record.rollback import roll_back


def _write(path, run_id, keys, mode):
    write_deltalake(str(path), pa.table({"key": keys, "_tl_run_id": [run_id] * len(keys)}), mode=mode,
                    commit_properties=CommitProperties(custom_metadata={"userMetadata": json.dumps(
                        {"tracelake_run_id": run_id})}))
    return DeltaTable(str(path)).version()


def _content(path):
    t = DeltaTable(str(path)).to_pyarrow_table()
    return sorted(zip(t.column("_tl_run_id").to_pylist(), t.column("key").to_pylist(), strict=True))


def test_an_appended_commit_rolled_back_as_overwrite_restores_nothing_twice(tmp_path):
    path = tmp_path / "numbers__quarantine"
    _write(path, "earlier", ["a", "b"], "append")
    v = _write(path, "failed", ["z"], "append")
    result = roll_back(str(path), "failed", v, "overwrite", None)
    assert (result.rows_removed, result.rows_restored) == (1, 0)
    assert _content(path) == [("earlier", "a"), ("earlier", "b")]


def test_an_overwrite_commit_still_gets_the_replaced_rows_back(tmp_path):
    path = tmp_path / "numbers"
    _write(path, "earlier", ["a", "b"], "overwrite")
    v = _write(path, "failed", ["z"], "overwrite")
    _write(path, "later", ["y"], "append")
    result = roll_back(str(path), "failed", v, "overwrite", None)
    assert (result.rows_removed, result.rows_restored) == (1, 2)
    assert _content(path) == [("earlier", "a"), ("earlier", "b"), ("later", "y")]
