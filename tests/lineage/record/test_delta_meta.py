"""The Delta metadata module against tables written by delta-rs: no Spark needed."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from tracelake.lineage.record import delta_meta


def _write(path: Path, run_id: str | None, rows: int = 2, partition: str | None = "p1", mode: str = "append"):
    data = {"x": list(range(rows)), "_tl_run_id": [run_id or "-"] * rows}
    kwargs: dict = {}
    if partition is not None:
        data["_tl_partition"] = [partition] * rows
        kwargs["partition_by"] = ["_tl_partition"]
    meta = {"userMetadata": json.dumps({"tracelake_run_id": run_id, "partition": partition})} if run_id else {}
    write_deltalake(str(path), pa.table(data), mode=mode, commit_properties=CommitProperties(custom_metadata=meta),
                    **kwargs)


def test_newest_version_agrees_with_delta_rs_across_checkpoints(tmp_path):
    path = tmp_path / "t"
    assert delta_meta.latest_version(str(path)) is None and not delta_meta.table_exists(str(path))
    for i in range(25):
        _write(path, f"r{i}")
        if i in (9, 19):
            DeltaTable(str(path)).create_checkpoint()
        assert delta_meta.latest_version(str(path)) == DeltaTable(str(path)).version() == i


def test_one_commit_its_actions_and_its_run(tmp_path):
    path = tmp_path / "t"
    _write(path, "run-a", rows=3)
    _write(path, None, rows=1)  # a commit no Tracelake run made
    commit = delta_meta.read_commit(str(path), 0)
    assert commit.run_id == "run-a" and commit.rows_added == 3 and len(commit.adds) == 1
    assert commit.bytes_added == commit.adds[0]["size"] and commit.partitions_touched() == {"p1"}
    assert delta_meta.read_commit(str(path), 1).run_id is None
    assert delta_meta.find_commit(str(path), "run-a").version == 0
    assert delta_meta.find_commit(str(path), "run-a", oldest=1) is None
    with pytest.raises(delta_meta.CommitMissing, match="commit 7"):
        delta_meta.read_commit(str(path), 7)


def test_partitions_schema_and_empty_partitions(tmp_path):
    path = tmp_path / "t"
    _write(path, "a", partition="2026-01-01")
    _write(path, "b", partition="2026-01-02")
    assert delta_meta.partitions_at(str(path), 1) == ["2026-01-01", "2026-01-02"]
    assert delta_meta.partitions_at(str(path), 0) == ["2026-01-01"]
    delta_meta.empty_commit(str(path), json.dumps({"tracelake_run_id": "c", "partition": "2026-01-03"}))
    assert delta_meta.empty_partitions(str(path), 2, ["2026-01-03", "2026-01-04"]) == {"2026-01-03"}
    flat = tmp_path / "flat"
    _write(flat, "x", partition=None)
    assert delta_meta.partitions_at(str(flat), 0) is None
    h1, text = delta_meta.schema_fingerprint(delta_meta.schema_at(str(path), 0))
    assert [f["name"] for f in json.loads(text)] == ["x", "_tl_run_id", "_tl_partition"]
    assert h1 != delta_meta.schema_fingerprint(delta_meta.schema_at(str(flat), 0))[0]


def test_the_file_digest_changes_with_a_single_byte(tmp_path):
    path = tmp_path / "t"
    _write(path, "a", rows=50)
    commit = delta_meta.read_commit(str(path), 0)
    before = delta_meta.files_digest(str(path), commit)
    assert before == delta_meta.files_digest(str(path), commit)
    data_file = path / commit.adds[0]["path"]
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data_file.write_bytes(bytes(raw))
    assert delta_meta.files_digest(str(path), commit) != before


def test_the_oldest_readable_version_after_log_cleanup(tmp_path):
    path = tmp_path / "t"
    for i in range(12):
        _write(path, f"r{i}")
    assert delta_meta.oldest_readable_version(str(path)) == 0
    DeltaTable(str(path)).create_checkpoint()  # at version 11
    for v in range(11):
        (path / "_delta_log" / f"{v:020d}.json").unlink()  # what log cleanup does past the retention
    assert delta_meta.oldest_readable_version(str(path)) == 11
