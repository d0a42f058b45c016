"""The fast path of a lineage hop (the files the records name) against the slow one (the table's
snapshot at that version), on a history that has everything that makes "which files hold this
version" hard: partition re-runs, a run whose commit was rolled back (and readers on both sides
of the rollback), a multi-partition run partly replaced later, an OPTIMIZEd table whose files were
rewritten, a commit no record accounts for, and records written before the field existed.

Every recorded hop is read both ways and must give the same rows; every trace and impact must
give the same graph; and the fast path must really be taken where the records can vouch for it.
No Spark: tables written with delta-rs, records journaled as the recorder writes them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from tracelake.lineage import COMPONENT_RUNS, open_lakehouse
from tracelake.lineage.query.impact import impact
from tracelake.lineage.query.recorded import RecordedFiles
from tracelake.lineage.query.trace import LineageWalker, trace
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.rollback import roll_back
from tracelake.lineage.record.runid import new_run_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)
D1, D2, D3 = "2026-01-01", "2026-01-02", "2026-01-03"


class History:
    """delta-rs commits, and records carrying what the recorder records about each commit."""

    def __init__(self, home: str):
        self.lake = open_lakehouse(home)
        self.clock = 0
        self.ids: dict[str, str] = {}

    def run(self, name: str) -> str:
        self.clock += 1
        self.ids[name] = new_run_id(now_ms=int((T0 + timedelta(minutes=self.clock)).timestamp() * 1000))
        return self.ids[name]

    def write(self, run_id: str, table: str, rows: list[dict], parts: list[str] | None, replace: bool = False) -> int:
        path = self.lake.layout.table(table)
        data = pa.Table.from_pylist([{**r, "_tl_run_id": run_id} for r in rows])
        kwargs: dict = {"partition_by": ["_tl_partition"]} if parts else {}
        if replace:
            kwargs["predicate"] = " OR ".join(f"_tl_partition = '{p}'" for p in parts or [])
        write_deltalake(path, data, mode="overwrite" if replace else "append", commit_properties=CommitProperties(
            custom_metadata={"userMetadata": json.dumps({"tracelake_run_id": run_id})}), **kwargs)
        return DeltaTable(path).version()

    def record(self, run_id: str, table: str, version: int | None, *, parts=None, inputs=(), keys=None,
               mode: str = "partition", files: bool = True, rolled_back: int | None = None,
               status: str = "succeeded") -> None:
        path = self.lake.layout.table(table)
        row = {"run_id": run_id, "component": table, "asset_key": table, "status": status,
               "partition_key": parts[0] if parts else None, "started_at": T0 + timedelta(minutes=self.clock),
               "output_table": table, "output_path": path, "output_version": version, "output_partitions": parts,
               "write_mode": mode, "inputs": list(inputs), "rolled_back_version": rolled_back,
               "lineage_keys_json": None if keys is None else json.dumps(keys)}
        if version is not None:
            commit = delta_meta.read_commit(path, version)
            row["output_rows"] = commit.rows_added
            row["output_schema_json"] = delta_meta.schema_fingerprint(delta_meta.schema_at(path, version))[1]
            if files:
                row["output_added_files"] = delta_meta.added_files(commit)
        self.lake.journal.append(COMPONENT_RUNS, run_id, row)

    def pin(self, table: str, parts=None) -> dict:
        path = self.lake.layout.table(table)
        return {"kind": "table", "name": table, "path": path, "version": DeltaTable(path).version(),
                "partitions": parts}


def _src(h: History) -> None:
    """src: three days; day 1 re-run; a failed re-run of day 2, rolled back; a two-day run."""
    for name, day, keys in (("a", D1, ["k1", "k2"]), ("b", D2, ["k3", "k4"])):
        v = h.write(h.run(name), "src", [{"key": k, "value": 1, "_tl_partition": day} for k in keys], [day])
        h.record(h.ids[name], "src", v, parts=[day])
    h.reads = {"early": h.pin("src", [D1, D2])}
    v = h.write(h.run("f"), "src", [{"key": "k1", "value": 2, "_tl_partition": D1}], [D1], replace=True)
    h.record(h.ids["f"], "src", v, parts=[D1])
    v = h.write(h.run("g"), "src", [{"key": "k9", "value": 3, "_tl_partition": D2}], [D2], replace=True)
    h.reads["during"] = h.pin("src", [D1, D2])  # the failed run's rows are visible here
    done = roll_back(h.lake.layout.table("src"), h.ids["g"], v, "partition", [D2])
    h.record(h.ids["g"], "src", v, parts=[D2], rolled_back=done.version, status="failed")
    h.reads["after"] = h.pin("src", [D1, D2])
    rows = [{"key": "k5", "value": 4, "_tl_partition": D2}, {"key": "k6", "value": 4, "_tl_partition": D3}]
    v = h.write(h.run("r"), "src", rows, [D2, D3], replace=True)  # a range run over two days
    h.record(h.ids["r"], "src", v, parts=[D2, D3])
    v = h.write(h.run("s"), "src", [{"key": "k7", "value": 5, "_tl_partition": D3}], [D3], replace=True)
    h.record(h.ids["s"], "src", v, parts=[D3])  # replaces day 3 only: run r still holds day 2
    h.reads["last"] = h.pin("src", [D1, D2, D3])


def _app(h: History) -> None:
    """app: appends (several files in one partition), then OPTIMIZE rewrites them into one."""
    for name, keys in (("p1", ["k1", "k2"]), ("p2", ["k3"]), ("p3", ["k4", "k9"])):
        v = h.write(h.run(name), "app", [{"key": k, "_tl_partition": D1} for k in keys], [D1])
        h.record(h.ids[name], "app", v, parts=[D1], mode="append")
    DeltaTable(h.lake.layout.table("app")).optimize.compact()  # files rewritten; no record says so
    h.reads["compacted"] = h.pin("app", [D1])


@pytest.fixture
def history(home):
    h = History(home)
    _src(h)
    _app(h)
    for name, read in h.reads.items():  # readers keyed on `key`, one per pinned version
        table = "mid_app" if read["name"] == "app" else f"mid_{name}"
        v = h.write(h.run(table), table, [{"key": f"k{i}"} for i in range(1, 10)], None)
        h.record(h.ids[table], table, v, mode="overwrite", inputs=[read], keys={read["name"]: ["key"]})
    # A record from before the field existed: its hops must still be answered (from the snapshot).
    v = h.write(h.run("old"), "old", [{"key": "k1"}], None)
    h.record(h.ids["old"], "old", v, mode="overwrite", files=False)
    v = h.write(h.run("on_old"), "on_old", [{"key": "k1"}], None)
    h.record(h.ids["on_old"], "on_old", v, mode="overwrite", inputs=[h.pin("old")], keys={"old": ["key"]})
    return h


def _sorted(table: pa.Table) -> list[tuple]:
    return sorted(tuple(r.values()) for r in table.select(sorted(table.column_names)).to_pylist())


def _canon(result) -> tuple:
    d = result.to_dict()
    return (sorted((n["id"], n["rows"], n["depth"], n["version"], n["status"]) for n in d["nodes"]),
            sorted((e["child"], e["parent"], e["via"], e["input"], e["rows"]) for e in d["edges"]))


def test_every_recorded_hop_reads_the_same_rows_both_ways(history):
    slow = LineageWalker(history.lake, recorded_files=False)
    fast = RecordedFiles(slow.index, history.lake.layout)
    used = 0
    for rec in slow.index.table.to_pylist():
        for inp in rec["inputs"] or []:
            args = (inp["path"], inp["version"], ["key"])
            for run_ids in (None, [rec["run_id"]]):
                expected = slow.reader.rows(*args, partitions=inp["partitions"], run_ids=run_ids)
                got = fast.rows(*args, partitions=inp["partitions"], run_ids=run_ids)
                if got is not None:
                    used += 1
                    assert _sorted(got) == _sorted(expected), (rec["component"], inp["name"], inp["version"])
    assert used >= 10  # src (before, during and after the rollback, partly replaced) and the compacted app


def test_files_read_once_are_answered_from_memory_and_the_budget_holds(history):
    index = LineageWalker(history.lake).index
    roomy = RecordedFiles(index, history.lake.layout)
    tight = RecordedFiles(index, history.lake.layout, cache_bytes=1)   # keeps one file at most
    answers = []
    for _ in range(2):
        for rec in index.table.to_pylist():
            for inp, run_ids in ((i, r) for i in rec["inputs"] or [] for r in (None, [rec["run_id"]])):
                args = (inp["path"], inp["version"], ["key"])
                a, b = (f.rows(*args, partitions=inp["partitions"], run_ids=run_ids) for f in (roomy, tight))
                assert (a is None) == (b is None)
                if a is not None:
                    assert _sorted(a) == _sorted(b)
                    answers.append(_sorted(a))
    half = len(answers) // 2
    assert half >= 10 and answers[:half] == answers[half:]
    assert roomy.cache.hits >= half                  # the second pass read no file from disk
    assert len(tight.cache._tables) == 1 and tight.cache.used == next(iter(tight.cache._tables.values())).nbytes


def test_the_rolled_back_and_compacted_versions_come_from_the_recorded_files(history):
    index = LineageWalker(history.lake).index
    fast = RecordedFiles(index, history.lake.layout)
    ids, reads = history.ids, history.reads
    during = fast.files("src", reads["during"]["path"], reads["during"]["version"], [D2], None)
    after = fast.files("src", reads["after"]["path"], reads["after"]["version"], [D2], None)
    assert during is not None and after is not None
    assert {f for fs in during.values() for f in fs} == \
        {reads["during"]["path"] + "/" + f["path"] for f in index.added_files(ids["g"])}
    assert {f for fs in after.values() for f in fs} == \
        {reads["after"]["path"] + "/" + f["path"] for f in index.added_files(ids["b"])}
    last = fast.files("src", reads["last"]["path"], reads["last"]["version"], [D2, D3], None)
    assert last is not None and set(last) == {D2, D3}  # day 2 from run r, day 3 from run s
    compacted = fast.files("app", reads["compacted"]["path"], reads["compacted"]["version"], [D1], None)
    assert compacted is not None and len(compacted[D1]) == 3  # the three appends' own files, not the rewrite
    assert fast.rows(history.pin("old")["path"], 0, ["key"]) is None  # no file list recorded: the snapshot


def test_a_change_no_record_accounts_for_falls_back_to_the_snapshot(history):
    path = history.lake.layout.table("src")
    DeltaTable(path).delete("key = 'k5'")  # by hand: no run, no record
    index = LineageWalker(history.lake).index
    fast = RecordedFiles(index, history.lake.layout)
    latest = DeltaTable(path).version()
    assert fast.rows(path, latest, ["key"], partitions=[D2]) is None
    assert fast.rows(path, latest, ["key"], partitions=[D1]) is not None  # day 1 untouched: still fast


def test_trace_and_impact_give_the_same_answers_both_ways(history):
    lake, ids = history.lake, history.ids
    slow = LineageWalker(lake, recorded_files=False)
    fast = LineageWalker(lake, index=slow.index)
    for table in ("mid_early", "mid_during", "mid_after", "mid_last", "mid_app", "on_old"):
        for where in ("true", "key = 'k1'", "key IN ('k3', 'k5', 'k9')"):
            assert _canon(trace(lake, table, where, walker=fast)) == _canon(trace(lake, table, where, walker=slow))
    for run in ("a", "b", "f", "g", "r", "s", "p1", "p3", "old"):
        assert _canon(impact(lake, ids[run], walker=fast)) == _canon(impact(lake, ids[run], walker=slow))


def test_keyed_hops_that_skip_files_by_their_statistics_read_the_same_rows(history):
    slow = LineageWalker(history.lake, recorded_files=False)
    fast = RecordedFiles(slow.index, history.lake.layout)
    fast.prune_from_files = 0   # every keyed hop consults the statistics, however few its files
    used = 0
    for rec in slow.index.table.to_pylist():
        for inp in rec["inputs"] or []:
            for keys in (["k1"], ["k3", "k5", "k9"], ["nobody"]):
                args = (inp["path"], inp["version"], ["key"])
                kwargs = {"partitions": inp["partitions"], "key_columns": ["key"], "key_values": pa.array(keys)}
                got = fast.rows(*args, **kwargs)
                if got is not None:
                    used += 1
                    assert _sorted(got) == _sorted(slow.reader.rows(*args, **kwargs)), (inp["name"], keys)
    assert used >= 15 and fast.stats.skipped > 0


def test_trace_and_impact_agree_when_hops_skip_files(history):
    lake, ids = history.lake, history.ids
    slow = LineageWalker(lake, recorded_files=False)
    fast = LineageWalker(lake, index=slow.index)
    assert fast.recorded is not None
    fast.recorded.prune_from_files = 0
    for table in ("mid_early", "mid_last", "mid_app"):
        for where in ("key = 'k1'", "key IN ('k3', 'k5', 'k9')"):
            assert _canon(trace(lake, table, where, walker=fast)) == _canon(trace(lake, table, where, walker=slow))
    for run in ("a", "b", "f", "r", "p1"):
        assert _canon(impact(lake, ids[run], walker=fast)) == _canon(impact(lake, ids[run], walker=slow))
    assert fast.recorded.stats.skipped > 0


def test_a_recorded_file_that_is_gone_sends_the_hop_to_the_snapshot(history):
    import os

    index = LineageWalker(history.lake).index
    fast = RecordedFiles(index, history.lake.layout)
    last = history.reads["last"]
    gone = fast.files("src", last["path"], last["version"], [D3], None)
    assert gone is not None and len(gone[D3]) == 1
    os.remove(gone[D3][0])        # as VACUUM past the retention horizon would
    assert fast.rows(last["path"], last["version"], ["key"], partitions=[D3]) is None
    assert fast.rows(last["path"], last["version"], ["key"], partitions=[D1]) is not None
