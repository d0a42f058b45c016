"""Trace and impact over a small recorded history, without Spark: tables written with delta-rs,
run records journaled as the recorder would write them. The answers are known by construction.

    src (daily, two runs: a on day 1 with k1,k2; b on day 2 with k3,k4)
      └─ mid   (run c reads src@v1 both days, keyed on `key`)
           ├─ model m v1   (run d reads mid whole, registers m v1)
           └─ out          (run e reads mid keyed on `key`, loads m v1)
    src day 1 re-run later (run f): rows of a are replaced from that version on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import CommitProperties, write_deltalake

from tracelake.lineage import COMPONENT_RUNS, open_lakehouse
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.query.impact import impact
from tracelake.lineage.query.slices import SliceError
from tracelake.lineage.query.trace import trace
from tracelake.lineage.record.runid import new_run_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class History:
    """Writes Delta commits and the run records that describe them."""

    def __init__(self, home: str):
        self.lake = open_lakehouse(home)
        self.versions: dict[str, int] = {}
        self.clock = 0

    def run_id(self) -> str:
        self.clock += 1
        return new_run_id(now_ms=int((T0 + timedelta(minutes=self.clock)).timestamp() * 1000))

    def write(self, run_id: str, table: str, rows: list[dict], partition: str | None = None, mode: str = "append") -> int:
        path = self.lake.layout.table(table)
        extra = {"_tl_run_id": run_id} if partition is None else {"_tl_run_id": run_id, "_tl_partition": partition}
        data = pa.Table.from_pylist([{**r, **extra} for r in rows])
        kwargs: dict = {"partition_by": ["_tl_partition"]} if partition is not None else {}
        if partition is not None and mode == "overwrite":
            kwargs["predicate"] = f"_tl_partition = '{partition}'"
        write_deltalake(path, data, mode=mode, commit_properties=CommitProperties(
            custom_metadata={"userMetadata": f'{{"tracelake_run_id": "{run_id}"}}'}), **kwargs)
        self.versions[table] = self.versions.get(table, -1) + 1
        return self.versions[table]

    def record(self, run_id: str, component: str, output: str, version: int, rows: int, *, inputs=(),
               partitions=None, keys=None, models=(), mode: str = "partition") -> None:
        self.lake.journal.append(COMPONENT_RUNS, run_id, {
            "run_id": run_id, "component": component, "asset_key": component, "status": "succeeded",
            "partition_key": partitions[0] if partitions else None, "started_at": T0 + timedelta(minutes=self.clock),
            "output_table": output, "output_path": self.lake.layout.table(output), "output_version": version,
            "output_rows": rows, "output_partitions": partitions, "write_mode": mode, "inputs": list(inputs),
            "models": list(models), "lineage_keys_json": None if keys is None else json.dumps(keys),
        })

    def table_input(self, name: str, version: int, partitions=None) -> dict:
        return {"kind": "table", "name": name, "path": self.lake.layout.table(name), "version": version,
                "partitions": partitions}


@pytest.fixture
def history(home):
    h = History(home)
    ids = {}
    for name, day, keys in (("a", "2026-01-01", ["k1", "k2"]), ("b", "2026-01-02", ["k3", "k4"])):
        ids[name] = h.run_id()
        v = h.write(ids[name], "src", [{"key": k, "value": i} for i, k in enumerate(keys)], day)
        h.record(ids[name], "src", "src", v, 2, partitions=[day])
    ids["c"] = h.run_id()
    v = h.write(ids["c"], "mid", [{"key": k, "value": 10} for k in ("k1", "k2", "k3", "k4")])
    h.record(ids["c"], "mid", "mid", v, 4, mode="append", keys={"src": ["key"]},
             inputs=[h.table_input("src", 1, ["2026-01-01", "2026-01-02"])])
    ids["d"] = h.run_id()
    v = h.write(ids["d"], "model_table", [{"model_version": "1"}])
    h.record(ids["d"], "model_table", "model_table", v, 1, mode="overwrite", inputs=[h.table_input("mid", 0)],
             models=[{"role": "registered", "name": "m", "version": "1"}])
    ids["e"] = h.run_id()
    v = h.write(ids["e"], "out", [{"key": k, "score": 0.5} for k in ("k1", "k2", "k3", "k4")])
    h.record(ids["e"], "out", "out", v, 4, mode="append", keys={"mid": ["key"]},
             inputs=[h.table_input("mid", 0), {"kind": "model", "name": "m", "model_version": "1"}])
    ids["f"] = h.run_id()  # a later re-run of day 1 replaces run a's rows
    v = h.write(ids["f"], "src", [{"key": "k1", "value": 100}, {"key": "k2", "value": 200}], "2026-01-01",
                mode="overwrite")
    h.record(ids["f"], "src", "src", v, 2, partitions=["2026-01-01"])
    h.ids = ids
    return h


def test_trace_narrows_row_by_row_and_crosses_the_model(history):
    ids = history.ids
    result = trace(history.lake, "out", "key = 'k1'")
    assert result.rows == 1 and result.roots == [ids["e"]]
    assert result.nodes[ids["c"]].rows == 4          # via the model: the training run read mid whole
    assert result.nodes[ids["a"]].rows == 2          # k1 by key, and k1+k2 through the model's training data
    assert ids["f"] not in result.nodes              # the re-run came after every read: not in this lineage
    vias = {(e.child, e.parent): e.via for e in result.edges}
    assert vias[(ids["e"], ids["c"])] == "rows"
    assert vias[(ids["e"], "model:m:1")] == "model" and vias[("model:m:1", ids["d"])] == "registered"


def test_trace_of_a_key_only_the_model_run_reaches(history):
    ids = history.ids
    result = trace(history.lake, "out", "key = 'k3'")
    assert result.nodes[ids["b"]].rows == 2  # k3 by key; k3+k4 through the model's whole read of mid
    assert {n.id for n in result.runs()} == {ids[x] for x in "abcde"}


def test_impact_of_a_source_run_follows_live_rows_and_the_model(history):
    ids = history.ids
    result = impact(history.lake, ids["a"])
    affected = {n.id: n for n in result.affected_runs()}
    assert set(affected) == {ids["c"], ids["d"], ids["e"]}
    assert affected[ids["c"]].rows == 2              # only k1, k2 of mid descend from run a
    assert affected[ids["e"]].rows == 4              # every out row: through the model trained on mid
    assert result.models() == ["model m v1"]
    # By table version: src@v0 was written by run a.
    assert impact(history.lake, "src@0").start == ids["a"]


def test_rows_replaced_before_anyone_read_them_affect_nobody(history):
    result = impact(history.lake, history.ids["f"])
    assert result.affected_runs() == []


def test_the_index_knows_writers_readers_and_liveness(history):
    ids = history.ids
    index = AuditIndex(history.lake)
    assert index.writer_of_version("src", 2) == ids["f"]
    assert index.live_writers("src", 1) == sorted([ids["a"], ids["b"]])
    assert index.live_writers("src", 2) == sorted([ids["b"], ids["f"]])
    assert index.rows_live_at(ids["a"], 1) and not index.rows_live_at(ids["a"], 2)
    assert [r for r, _ in index.reader_entries("src", 0, ["2026-01-01"])] == [ids["c"]]
    assert index.model_registrar("m", "1") == ids["d"] and index.model_consumers("m", "1") == [ids["e"]]
    assert index.key_columns_of("mid") == {"key"}


def test_bad_targets_are_clear_errors(history):
    with pytest.raises(SliceError, match="no recorded run wrote src@v9"):
        impact(history.lake, "src@9")
    with pytest.raises(SliceError, match="write a table version as TABLE@VERSION"):
        impact(history.lake, "src@latest")
    with pytest.raises(SliceError, match="src has no version 7"):
        trace(history.lake, "src", "true", as_of=7)
