"""Rolling a failed run's commit back out of a table, with delta-rs only."""

from __future__ import annotations

import json

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.rollback import roll_back, visible_rows


def _write(path, run_id, keys, partition=None, mode="append"):
    data = {"key": keys, "_tl_run_id": [run_id] * len(keys)}
    kwargs: dict = {}
    if partition is not None:
        data["_tl_partition"] = [partition] * len(keys)
        kwargs["partition_by"] = ["_tl_partition"]
        if mode == "overwrite":
            kwargs["predicate"] = f"_tl_partition = '{partition}'"
    write_deltalake(str(path), pa.table(data), mode=mode, commit_properties=CommitProperties(
        custom_metadata={"userMetadata": json.dumps({"tracelake_run_id": run_id})}), **kwargs)
    return DeltaTable(str(path)).version()


def _content(path):
    t = DeltaTable(str(path)).to_pyarrow_table()
    return sorted(zip(t.column("_tl_run_id").to_pylist(), t.column("key").to_pylist(), strict=True))


def test_a_rerun_that_failed_after_its_commit_gets_the_old_partition_back(tmp_path):
    path = tmp_path / "t"
    _write(path, "good", ["a", "b"], "p1")
    _write(path, "other", ["x"], "p2")
    v = _write(path, "failed", ["a2", "b2", "c2"], "p1", mode="overwrite")
    result = roll_back(str(path), "failed", v, "partition", ["p1"])
    assert result.rows_removed == 3 and result.rows_restored == 2
    assert _content(path) == [("good", "a"), ("good", "b"), ("other", "x")]
    rollback = delta_meta.read_commit(str(path), result.version)
    assert json.loads(rollback.info["userMetadata"])["tracelake_rollback_of"] == "failed"
    # History is intact: the failed version still reads as it was.
    assert DeltaTable(str(path), version=v).to_pyarrow_table().num_rows == 4


def test_two_writers_of_a_new_partition_only_the_loser_is_removed(tmp_path):
    path = tmp_path / "t"
    _write(path, "winner", ["a"], "p1")
    v = _write(path, "loser", ["a", "b"], "p1")  # a blind append of the same new partition
    assert roll_back(str(path), "loser", v, "partition", ["p1"]).rows_restored == 0
    assert _content(path) == [("winner", "a")]


def test_append_and_overwrite_modes(tmp_path):
    appended = tmp_path / "a"
    _write(appended, "one", ["a"])
    v = _write(appended, "failed", ["b", "c"])
    _write(appended, "later", ["d"])
    roll_back(str(appended), "failed", v, "append", None)
    assert _content(appended) == [("later", "d"), ("one", "a")]
    replaced = tmp_path / "o"
    _write(replaced, "first", ["a", "b"], mode="overwrite")
    v = _write(replaced, "failed", ["z"], mode="overwrite")
    _write(replaced, "later", ["y"])
    roll_back(str(replaced), "failed", v, "overwrite", None)
    assert _content(replaced) == [("first", "a"), ("first", "b"), ("later", "y")]


def test_nothing_to_do_when_a_later_run_already_replaced_the_rows(tmp_path):
    path = tmp_path / "t"
    v = _write(path, "failed", ["a"], "p1")
    _write(path, "rerun", ["a"], "p1", mode="overwrite")
    assert visible_rows(str(path), "failed") == 0
    result = roll_back(str(path), "failed", v, "partition", ["p1"])
    assert result.version is None and DeltaTable(str(path)).version() == v + 1
