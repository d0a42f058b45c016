"""The lineage graph as recorded: who wrote which table version, who read it, which model.

Built once per query from the component-run records and answered from memory (vectorised over
Arrow, so three years of hourly runs index in well under a second). Everything here is recorded
fact - input versions read, output versions written - never inferred from timing, which is
where mltrace's "most recent run whose outputs match" heuristic goes wrong across cadences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .audit_schema import COMPONENT_RUNS, audit_schema, normalize_row
from .lakehouse import Lakehouse
from .runs import RunNotFound

__all__ = ["AuditIndex", "KeyPair", "parse_lineage_keys"]

_SCALARS = ["run_id", "component", "asset_key", "partition_key", "dagster_run_id", "status", "started_at",
            "ended_at", "duration_ms", "output_table", "output_path", "output_version", "output_rows", "write_mode",
            "lineage_keys_json", "code_version", "source_hash", "git_commit", "error_message"]


@dataclass(frozen=True)
class KeyPair:
    """Output column ``out`` of a run holds the value of input column ``inp``."""

    out: str
    inp: str


def parse_lineage_keys(raw: str | None) -> dict[str, list[KeyPair]]:
    """``{"input": ["trip_id", "trip_date=pickup_date"]}`` -> pairs (``out=in``, or same name)."""
    if not raw:
        return {}
    out: dict[str, list[KeyPair]] = {}
    for name, specs in json.loads(raw).items():
        pairs = []
        for spec in specs:
            left, _, right = spec.partition("=")
            pairs.append(KeyPair(left.strip(), (right or left).strip()))
        out[name] = pairs
    return out


def _explode(table: pa.Table, column: str) -> pd.DataFrame:
    """One row per element of a list<struct> column, with the owning run id."""
    lists = table.column(column).combine_chunks()
    parents = pc.list_parent_indices(lists)
    flat = pc.list_flatten(lists)
    frame = pa.Table.from_struct_array(flat).to_pandas() if len(flat) else pd.DataFrame(
        columns=[f.name for f in lists.type.value_type])
    frame["run_id"] = pc.take(table.column("run_id"), parents).to_pylist() if len(flat) else []
    return frame


class AuditIndex:
    """In-memory index over component runs (finished ones, plus open ones as ``started``)."""

    def __init__(self, lake: Lakehouse, table: pa.Table | None = None):
        self.lake = lake
        if table is None:
            table = self._load(lake)
        self.table = table
        self.runs = table.select(_SCALARS).to_pandas(integer_object_nulls=True).set_index("run_id", drop=False)
        self._row = {rid: i for i, rid in enumerate(table.column("run_id").to_pylist())}
        self.inputs = _explode(table, "inputs")
        self.models = _explode(table, "models")
        self._keys_cache: dict[str, dict[str, list[KeyPair]]] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._writes = self._build_writes(table)

    @staticmethod
    def _load(lake: Lakehouse) -> pa.Table:
        data = lake.store.read_arrow(COMPONENT_RUNS)
        # A record both flushed and still in the journal's tail appears twice: keep one.
        ids = data.column("run_id").to_pylist()
        seen: set[str] = set()
        keep = [i for i, rid in enumerate(ids) if not (rid in seen or seen.add(rid))]
        if len(keep) != len(ids):
            data = data.take(pa.array(keep))
        open_rows = [r.row for r in lake.journal.open_runs() if r.run_id not in seen]
        if open_rows:
            schema = audit_schema(COMPONENT_RUNS)
            extra = pa.Table.from_pylist([normalize_row({**r, "status": "started"}, schema) for r in open_rows],
                                         schema=schema)
            data = pa.concat_tables([data, extra])
        return data

    @staticmethod
    def _build_writes(table: pa.Table) -> pd.DataFrame:
        """One row per (run, partition) that put rows into a table: the commits that landed."""
        landed = table.filter(pc.is_valid(table.column("output_version")))
        base = landed.select(["run_id", "output_table", "output_version", "write_mode"]).to_pandas()
        parts = landed.column("output_partitions").to_pylist()
        base["partition"] = [p if p else [None] for p in parts]
        frame = base.explode("partition").rename(columns={"output_table": "table", "output_version": "version",
                                                          "write_mode": "mode"})
        return frame.astype({"version": "int64"}) if len(frame) else frame

    # -- single runs ----------------------------------------------------------------------------
    def has(self, run_id: str) -> bool:
        return run_id in self._row

    def record(self, run_id: str) -> dict[str, Any]:
        rec = self._records.get(run_id)
        if rec is None:
            if run_id not in self._row:
                raise RunNotFound(f"no component run {run_id} in {self.lake.settings.home}; "
                                  "list runs with `tracelake runs`")
            rec = self.table.slice(self._row[run_id], 1).to_pylist()[0]
            rec["inputs"] = rec.get("inputs") or []
            rec["models"] = rec.get("models") or []
            rec["output_partitions"] = rec.get("output_partitions") or []
            rec["metrics"] = dict(rec.get("metrics") or [])
            rec["lineage_keys"] = self.lineage_keys(run_id)
            self._records[run_id] = rec
        return rec

    def lineage_keys(self, run_id: str) -> dict[str, list[KeyPair]]:
        raw = self.runs.at[run_id, "lineage_keys_json"]
        if raw not in self._keys_cache:
            self._keys_cache[raw] = parse_lineage_keys(raw)
        return self._keys_cache[raw]

    # -- writers and readers ---------------------------------------------------------------------
    def writer_of_version(self, table: str, version: int) -> str | None:
        w = self._writes
        hit = w[(w["table"] == table) & (w["version"] == version)]
        return hit["run_id"].iloc[0] if len(hit) else None

    def live_writers(self, table: str, version: int, partitions: Iterable[str] | None = None) -> list[str]:
        """Runs whose rows are in ``table`` at ``version`` (for those partitions), per the records.

        A partition write replaces earlier writes of that partition; an overwrite replaces the
        table; appends accumulate.
        """
        w = self._writes
        w = w[(w["table"] == table) & (w["version"] <= version)].sort_values("version", kind="stable")
        wanted = set(partitions) if partitions is not None else None
        appended: list[str] = []
        last_by_partition: dict[Any, str] = {}
        for row in w.itertuples(index=False):
            if row.mode == "overwrite":
                last_by_partition, appended = {None: row.run_id}, []
            elif row.mode == "append":
                appended.append(row.run_id)
            else:
                last_by_partition[row.partition] = row.run_id
        live = set(appended)
        for part, run_id in last_by_partition.items():
            if wanted is None or part is None or part in wanted:
                live.add(run_id)
        return sorted(live)

    def rows_live_at(self, run_id: str, version: int) -> bool:
        """Are the rows ``run_id`` wrote still in its table at ``version``?"""
        rec = self.record(run_id)
        if rec.get("output_version") is None or int(rec["output_version"]) > version:
            return False
        return run_id in self.live_writers(rec["output_table"], version, rec["output_partitions"] or None)

    def readers_of(self, table: str, min_version: int = 0) -> pd.DataFrame:
        """Input entries (with ``run_id``) of every run that read ``table`` at ``min_version`` or later."""
        i = self.inputs
        if i.empty:
            return i
        return i[(i["kind"] == "table") & (i["name"] == table) & (i["version"] >= min_version)]

    def model_registrar(self, name: str, version: str) -> str | None:
        m = self.models
        if m.empty:
            return None
        hit = m[(m["role"] == "registered") & (m["name"] == name) & (m["version"].astype(str) == str(version))]
        return hit["run_id"].iloc[0] if len(hit) else None

    def model_consumers(self, name: str, version: str) -> list[str]:
        i = self.inputs
        if i.empty:
            return []
        hit = i[(i["kind"] == "model") & (i["name"] == name) & (i["model_version"].astype(str) == str(version))]
        return sorted(set(hit["run_id"]))

    def key_columns_of(self, table: str) -> set[str]:
        """Every column of ``table`` that some run declared as a lineage key (either side)."""
        cols: set[str] = set()
        for (raw, out_table), _ in self.runs.groupby(["lineage_keys_json", "output_table"], dropna=True):
            keys = parse_lineage_keys(raw)
            if out_table == table:
                for pairs in keys.values():
                    cols.update(p.out for p in pairs)
            for name, pairs in keys.items():
                if name == table:
                    cols.update(p.inp for p in pairs)
        return cols
