"""Skipping files by their Delta statistics: a file is left out only when no key looked for can
be in it, so a pruned hop reads the same rows - checked on real delta-rs tables, including the
orders where text and numbers disagree ("10" < "9") and strings Delta keeps only as a prefix."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable, write_deltalake

from tracelake.lineage.query.file_stats import FileStats, KeyFilter
from tracelake.lineage.query.slices import key_strings
from tracelake.lineage.query.walker import group_by_run

LONG = "x" * 40   # longer than the 32 characters Delta keeps of a string statistic


@pytest.fixture
def table(tmp_path):
    """One file per append: (version, tag) = (2, 'a'), (9, 'b'), (10, 'c'), (7, LONG+'m'..LONG+'q')."""
    path = str(tmp_path / "t")
    files: list[str] = []
    for rows in ([{"version": 2, "tag": "a"}], [{"version": 9, "tag": "b"}], [{"version": 10, "tag": "c"}],
                 [{"version": 7, "tag": LONG + "m"}, {"version": 7, "tag": LONG + "q"}]):
        write_deltalake(path, pa.Table.from_pylist(rows, schema=pa.schema([("version", pa.int64()),
                                                                            ("tag", pa.string())])), mode="append")
        added = {a["path"] for a in pa.table(DeltaTable(path).get_add_actions()).to_pylist()}
        files += sorted(added - set(files))   # in write order
    return path, files


def _keys(*values: str) -> pa.Array:
    return pa.array(values, pa.string())


def _holding(path: str, files: list[str], columns: list[str], *keys: str) -> set[str]:
    """Ground truth: the files with at least one row whose composite key is wanted."""
    out = set()
    for f in files:
        rows = ds.dataset(f"{path}/{f}", format="parquet").to_table()
        if pc.any(pc.is_in(key_strings(rows, columns), value_set=_keys(*keys))).as_py():
            out.add(f)
    return out


@pytest.mark.parametrize("columns,keys,kept", [
    (["version"], ["9"], 1),                 # as text "9" > "10"; as numbers 9 < 10: only its file
    (["version"], ["10"], 1),
    (["version"], ["3", "8"], 0),            # between the files' values: nothing
    (["version"], ["7"], 1),
    (["tag"], ["b", "c"], 2),
    (["tag"], [LONG + "p"], 1),              # inside the long-string file's range
    # beyond that file's max, but Spark stores a long string's max as a prefix: kept
    (["tag"], [LONG + "z"], 1),
    (["version", "tag"], ["9\x1fb", "10\x1fa"], 1),   # per column: version 9 or 10 and tag a or b
])
def test_a_file_is_skipped_only_when_none_of_the_keys_can_be_in_it(table, columns, keys, kept):
    path, files = table
    wanted = KeyFilter.of(columns, _keys(*keys))
    assert wanted is not None
    stats = FileStats()
    left = set(stats.prune(path, files, wanted))
    assert _holding(path, files, columns, *keys) <= left
    assert len(left) == kept
    assert stats.skipped == len(files) - kept and stats.loaded == 1


def test_ranges_are_compared_in_the_columns_own_order(table):
    path, files = table
    kept = FileStats().prune(path, files, KeyFilter.of(["version"], _keys("9")))  # type: ignore[arg-type]
    assert kept == [files[1]]                      # "9" sorts after "10" as text; 9 < 10 as numbers
    tags = FileStats().prune(path, files, KeyFilter.of(["tag"], _keys("b")))      # type: ignore[arg-type]
    assert tags == [files[1]]


def test_files_without_statistics_and_unknown_files_are_kept(table, tmp_path):
    path, files = table
    wanted = KeyFilter.of(["version"], _keys("2"))
    assert wanted is not None
    assert FileStats().prune(path, [*files, "not/in/the/log.parquet"], wanted) == [files[0], "not/in/the/log.parquet"]
    assert FileStats().prune(path, files, KeyFilter(("no_such_column",), (["2"],))) == files
    assert FileStats().prune(str(tmp_path / "missing"), files, wanted) == files   # no table: nothing pruned


def test_a_null_key_looked_for_prunes_nothing():
    assert KeyFilter.of(["version"], pa.array(["2", None], pa.string())) is None
    assert KeyFilter.of(["a", "b"], _keys("only-one-part")) is None   # cannot be split per column


def test_rows_grouped_by_run_are_the_filtered_rows_in_first_seen_order():
    ids = ["r2", "r1", "r2", None, "r3", "r1", "r2"]
    rows = pa.table({"_tl_run_id": pa.array(ids, pa.string()), "n": list(range(len(ids)))})
    got = [(run, part.column("n").to_pylist()) for run, part in group_by_run(rows)]
    expected = [(run, rows.filter(pc.equal(rows.column("_tl_run_id"), run)).column("n").to_pylist())
                for run in pc.unique(rows.column("_tl_run_id")).to_pylist()]
    assert got == expected == [("r2", [0, 2, 6]), ("r1", [1, 5]), (None, []), ("r3", [4])]
    only_null = pa.table({"_tl_run_id": pa.array([None, None], pa.string()), "n": [0, 1]})
    assert [(r, p.num_rows) for r, p in group_by_run(only_null)] == [(None, 0)]
