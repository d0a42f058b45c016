"""The lineage graph as recorded: who wrote which table version, who read it, which model.

Built once per query from the component-run records and answered from memory (vectorised over
Arrow, so three years of hourly runs index in well under a second). Everything here is recorded
fact - input versions read, output versions written - never inferred from timing, which is
where mltrace's "most recent run whose outputs match" heuristic goes wrong across cadences.

Longer than most modules (~420 lines), on purpose: ``AuditIndex`` is one index with three faces -
writers (who made each version live), readers (who read a version, for impact) and models - built
from the same exploded tables in one pass; split apart, each face would rebuild or pass around
the others' private frames.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.query.runs import RunNotFound
from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
from tracelake.lineage.record.chain import normalize_row

__all__ = ["AuditIndex", "KeyPair", "parse_lineage_keys", "recorded_runs"]

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


_NOBODY = ""  # the writer of a partition emptied by a rollback


def _undo(parts: dict[Any, list[tuple[int, str]]], overwrites: list[tuple[int, str]], write: Any, at: int) -> None:
    """A rolled-back write: from version ``at`` on, whoever was live before it is live again."""
    entries = overwrites if write.mode == "overwrite" else parts.get(write.partition) if write.mode != "append" else None
    if entries is None:
        return  # appends: undone by the rolled_back map
    before = _last_before([e for e in entries if e[1] != write.run_id], int(write.version) - 1)
    bisect.insort(entries, (at, before[1] if before else _NOBODY))


def _last_before(entries: list[tuple[int, str]], version: int) -> tuple[int, str] | None:
    """The newest (version, run) at or before ``version`` in a version-sorted list."""
    i = bisect.bisect_right(entries, (version, "\uffff"))
    return entries[i - 1] if i else None


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
            table = recorded_runs(lake)
        self.table = table
        layout = lake.layout
        self.runs = table.select(_SCALARS).to_pandas(integer_object_nulls=True).set_index("run_id", drop=False)
        self.runs["output_path"] = [layout.resolve(t, p)
                                    for t, p in zip(self.runs["output_table"], self.runs["output_path"], strict=True)]
        self._row = {rid: i for i, rid in enumerate(table.column("run_id").to_pylist())}
        self.inputs = _explode(table, "inputs")
        if not self.inputs.empty:
            self.inputs["path"] = [p if k != "table" else layout.resolve(n, p)
                                   for k, n, p in zip(self.inputs["kind"], self.inputs["name"], self.inputs["path"], strict=True)]
        self.models = _explode(table, "models")
        self._keys_cache: dict[str, dict[str, list[KeyPair]]] = {}
        self._key_columns: dict[str, set[str]] | None = None
        self._input_parts = self._explode_partitions(self.inputs)
        self._readers: dict[tuple[str, Any], list[int]] | None = None
        self._in_run = self.inputs["run_id"].to_numpy() if not self.inputs.empty else None
        self._in_version = self.inputs["version"].fillna(-1).to_numpy() if not self.inputs.empty else None
        parts = (p or [] for p in table.column("output_partitions").to_pylist())
        self._out_parts = dict(zip(self.runs["run_id"], parts, strict=True))
        self._meta = {r.run_id: r for r in self.runs[["run_id", "component", "output_table", "output_path",
                                                      "output_version", "write_mode", "partition_key", "status",
                                                      "started_at", "output_rows"]].itertuples(index=False)}
        self._raw_keys = dict(zip(self.runs["run_id"], self.runs["lineage_keys_json"], strict=True))
        self._consumers: dict[tuple[str, str], list[str]] | None = None
        self._registered: dict[str, list[dict[str, Any]]] | None = None
        self._records: dict[str, dict[str, Any]] = {}
        self._writes = self._build_writes(table)
        self._per_table: dict[str, dict[str, Any]] = {}
        self._path_tables: dict[str, str] | None = None
        self._added: dict[str, list[dict[str, Any]] | None] = {}
        self._columns: dict[str, pa.Array] = {}


    @staticmethod
    def _explode_partitions(inputs: pd.DataFrame) -> pd.DataFrame:
        """One row per (run, input table, version, partition read); partition None = whole table."""
        if inputs.empty:
            return pd.DataFrame(columns=["run_id", "name", "version", "partition", "idx"])
        tables = inputs[inputs["kind"] == "table"].copy()
        tables["idx"] = tables.index
        tables["partition"] = [list(p) if p is not None and len(p) else [None] for p in tables["partitions"]]
        return tables[["run_id", "name", "version", "partition", "idx"]].explode("partition")

    @staticmethod
    def _build_writes(table: pa.Table) -> pd.DataFrame:
        """One row per (run, partition) that put rows into a table: the commits that landed."""
        landed = table.filter(pc.is_valid(table.column("output_version")))
        base = landed.select(["run_id", "output_table", "output_version", "write_mode", "rolled_back_version"]).to_pandas()
        parts = landed.column("output_partitions").to_pylist()
        base["partition"] = [p if p else [None] for p in parts]
        frame = base.explode("partition").rename(columns={"output_table": "table", "output_version": "version",
                                                          "write_mode": "mode"})
        return frame.astype({"version": "int64"}) if len(frame) else frame

    # -- single runs ----------------------------------------------------------------------------
    def meta(self, run_id: str) -> Any:
        """(run_id, component, output_table, output_path, output_version, write_mode, partition_key,
        status, started_at, output_rows) - cheap."""
        return self._meta[run_id]

    def output_version(self, run_id: str) -> int | None:
        """The version the run's commit made (None: it committed nothing)."""
        version = self._meta[run_id].output_version
        return None if version is None or version != version else int(version)

    def value(self, run_id: str, column: str) -> Any:
        """One recorded field of a run, without building its whole record (``record`` converts
        every nested list - ~150 us a run; a walk asks for a few fields of hundreds of runs)."""
        values = self._columns.get(column)
        if values is None:
            if column not in self.table.column_names:
                return None
            values = self._columns[column] = self.table.column(column).combine_chunks()
        return values[self._row[run_id]].as_py()

    def output_partitions(self, run_id: str) -> list[str]:
        return self._out_parts.get(run_id, [])

    def has(self, run_id: str) -> bool:
        return run_id in self._row

    def record(self, run_id: str) -> dict[str, Any]:
        rec = self._records.get(run_id)
        if rec is None:
            if run_id not in self._row:
                raise RunNotFound(f"no component run {run_id} in {self.lake.settings.home}; "
                                  "list runs with `tracelake runs`")
            rec = self.table.slice(self._row[run_id], 1).to_pylist()[0]
            layout = self.lake.layout
            rec["output_path"] = layout.resolve(rec.get("output_table"), rec.get("output_path"))
            rec["inputs"] = [{**i, "path": layout.resolve(i["name"], i.get("path"))} if i.get("kind") == "table" else i
                             for i in rec.get("inputs") or []]
            rec["models"] = rec.get("models") or []
            rec["output_partitions"] = rec.get("output_partitions") or []
            rec["metrics"] = dict(rec.get("metrics") or [])
            rec["lineage_keys"] = self.lineage_keys(run_id)
            self._records[run_id] = rec
        return rec

    def lineage_keys(self, run_id: str) -> dict[str, list[KeyPair]]:
        raw = self._raw_keys[run_id]
        if raw not in self._keys_cache:
            self._keys_cache[raw] = parse_lineage_keys(raw)
        return self._keys_cache[raw]

    # -- writers and readers ---------------------------------------------------------------------
    def _table_writes(self, table: str) -> dict[str, Any]:
        """Per table: partition -> [(version, run)], appends, overwrites - each sorted by version."""
        cached = self._per_table.get(table)
        if cached is None:
            w = self._writes
            w = w[w["table"] == table].sort_values("version", kind="stable")
            parts: dict[Any, list[tuple[int, str]]] = {}
            appends: list[tuple[int, str]] = []
            overwrites: list[tuple[int, str]] = []
            for row in w.itertuples(index=False):
                if row.mode == "overwrite":
                    overwrites.append((row.version, row.run_id))
                elif row.mode == "append":
                    appends.append((row.version, row.run_id))
                else:
                    parts.setdefault(row.partition, []).append((row.version, row.run_id))
            rolled_back = {r.run_id: int(r.rolled_back_version) for r in w.itertuples(index=False)
                           if r.rolled_back_version is not None and r.rolled_back_version == r.rolled_back_version}
            for row in w.itertuples(index=False):
                if row.run_id in rolled_back:
                    _undo(parts, overwrites, row, rolled_back[row.run_id])
            cached = {"parts": parts, "appends": appends, "overwrites": overwrites, "rolled_back": rolled_back,
                      "by_version": dict(zip(w["version"], w["run_id"], strict=True)),
                      "versions": sorted(set(w["version"])), "modes": set(w["mode"].dropna())}
            self._per_table[table] = cached
        return cached

    def write_modes(self, table: str) -> set[str]:
        """How the recorded runs wrote ``table`` (partition / append / overwrite)."""
        return self._table_writes(table)["modes"]

    def recorded_versions(self, table: str) -> set[int]:
        """Versions of ``table`` the records account for: runs' commits and their rollbacks."""
        tw = self._table_writes(table)
        return set(tw["by_version"]) | set(tw["rolled_back"].values())

    def current_writer(self, table: str, partition: Any, version: int) -> str | None:
        """The run whose rows partition ``partition`` of ``table`` holds at ``version`` (partition
        writes; a rollback hands the partition back to the run it had replaced). None: nobody."""
        hit = _last_before(self._table_writes(table)["parts"].get(partition, []), version)
        return None if hit is None or hit[1] == _NOBODY else hit[1]

    def partitions_written(self, table: str) -> list[Any]:
        return list(self._table_writes(table)["parts"])

    def appends_live_at(self, table: str, version: int) -> list[str]:
        """Append-mode runs whose rows are in ``table`` at ``version`` (not rolled back by then)."""
        tw = self._table_writes(table)
        return [run for v, run in tw["appends"] if v <= version and tw["rolled_back"].get(run, version + 1) > version]

    def overwrite_live_at(self, table: str, version: int) -> str | None:
        hit = _last_before(self._table_writes(table)["overwrites"], version)
        return None if hit is None or hit[1] == _NOBODY else hit[1]

    def newest_write_before(self, table: str, version: int) -> str | None:
        """The run of the newest recorded commit of ``table`` at or before ``version``."""
        tw = self._table_writes(table)
        i = bisect.bisect_right(tw["versions"], version)
        return tw["by_version"][tw["versions"][i - 1]] if i else None

    def added_files(self, run_id: str) -> list[dict[str, Any]] | None:
        """The data files the run's output commit added, as recorded (None: not recorded - a
        record written before the field existed, or an external run)."""
        if run_id not in self._added:
            self._added[run_id] = self.value(run_id, "output_added_files")
        return self._added[run_id]

    def table_of_path(self, path: str) -> str | None:
        """The table a recorded run wrote at ``path`` (resolved through the layout)."""
        if self._path_tables is None:
            self._path_tables = {p: t for p, t in zip(self.runs["output_path"], self.runs["output_table"], strict=True)
                                 if p and t}
        return self._path_tables.get(path)

    def writer_of_version(self, table: str, version: int) -> str | None:
        return self._table_writes(table)["by_version"].get(version)

    def writer_at(self, path: str, version: int) -> str | None:
        """The recorded run that committed ``version`` of the table at ``path`` (the slice reader
        attributes rows of tables written outside Tracelake - no ``_tl_run_id`` - this way)."""
        table = self.table_of_path(path)
        return None if table is None else self.writer_of_version(table, version)

    def live_writers(self, table: str, version: int, partitions: Iterable[str] | None = None) -> list[str]:
        """Runs whose rows are in ``table`` at ``version`` (for those partitions), per the records.

        A partition write replaces earlier writes of that partition; an overwrite replaces the
        table; appends accumulate.
        """
        tw = self._table_writes(table)
        cut = _last_before(tw["overwrites"], version)
        floor = cut[0] if cut else -1
        undone = tw["rolled_back"]
        live = {run for v, run in tw["appends"] if floor < v <= version and not undone.get(run, version + 1) <= version}
        if cut:
            live.add(cut[1])
        keys = tw["parts"].keys() if partitions is None else [p for p in partitions if p in tw["parts"]]
        for part in keys:
            hit = _last_before(tw["parts"][part], version)
            if hit and hit[0] > floor:
                live.add(hit[1])
        return sorted(live - {_NOBODY})

    def rows_live_at(self, run_id: str, version: int) -> bool:
        """Are the rows ``run_id`` wrote still in its table at ``version``?"""
        r = self._meta[run_id]
        own = r.output_version
        if own is None or own != own or int(own) > version:
            return False
        own = int(own)
        tw = self._table_writes(r.output_table)
        if tw["rolled_back"].get(run_id, version + 1) <= version:
            return False
        if any(own < v <= version for v, _ in tw["overwrites"]):
            return False
        if r.write_mode != "partition":
            return True  # appends and overwrites are only undone by a later overwrite (checked above)
        for part in self._out_parts.get(run_id, []):
            hit = _last_before(tw["parts"].get(part, []), version)
            if hit and hit[1] != run_id:
                return False
        return True

    def _readers_index(self) -> dict[tuple[str, Any], list[int]]:
        if self._readers is None:
            ip = self._input_parts
            index: dict[tuple[str, Any], list[int]] = {}
            for name, part, idx in zip(ip["name"], ip["partition"], ip["idx"], strict=True):
                index.setdefault((name, None if part is None or part != part else part), []).append(idx)
            self._readers = index
        return self._readers

    def _reader_rows(self, table: str, partitions: Iterable[str] | None) -> set[int]:
        """Rows of ``inputs`` that read ``table`` (the whole of it, or one of ``partitions``)."""
        index = self._readers_index()
        if partitions is None:
            return {i for (name, _), rows in index.items() if name == table for i in rows}
        idx = set(index.get((table, None), []))
        for p in partitions:
            idx.update(index.get((table, p), []))
        return idx

    def reader_entries(self, table: str, min_version: int, partitions: Iterable[str] | None) -> list[tuple[str, int]]:
        """(run id, version read) of the runs that read ``table`` (see ``readers_of``), cheaply."""
        if self.inputs.empty:
            return []
        idx = self._reader_rows(table, partitions)
        runs, versions = self._in_run, self._in_version
        assert runs is not None and versions is not None  # set whenever inputs exist
        return [(runs[i], int(versions[i])) for i in sorted(idx) if versions[i] >= min_version]

    def readers_of(self, table: str, min_version: int = 0, partitions: Iterable[str] | None = None) -> pd.DataFrame:
        """Input entries (with ``run_id``) of every run that read ``table`` at ``min_version`` or
        later - and, given ``partitions``, read at least one of them (or the whole table)."""
        if self.inputs.empty:
            return self.inputs
        idx = self._reader_rows(table, partitions)
        hit = self.inputs.loc[sorted(idx)]
        return hit[hit["version"] >= min_version]

    def model_registrar(self, name: str, version: str) -> str | None:
        m = self.models
        if m.empty:
            return None
        hit = m[(m["role"] == "registered") & (m["name"] == name) & (m["version"].astype(str) == str(version))]
        return hit["run_id"].iloc[0] if len(hit) else None

    def model_consumers(self, name: str, version: str) -> list[str]:
        """Runs that loaded model ``name`` at ``version`` (indexed once)."""
        if self._consumers is None:
            consumers: dict[tuple[str, str], set[str]] = {}
            i = self.inputs
            if not i.empty:
                loaded = i[i["kind"] == "model"]
                for n, v, run in zip(loaded["name"], loaded["model_version"], loaded["run_id"], strict=True):
                    consumers.setdefault((n, str(v)), set()).add(run)
            self._consumers = {k: sorted(v) for k, v in consumers.items()}
        return list(self._consumers.get((name, str(version)), []))

    def registered_models(self, run_id: str) -> list[dict[str, Any]]:
        """The models ``run_id`` registered (name, version, mlflow_run_id), indexed once."""
        if self._registered is None:
            by_run: dict[str, list[dict[str, Any]]] = {}
            m = self.models
            if not m.empty:
                for row in m[m["role"] == "registered"].to_dict("records"):
                    by_run.setdefault(row["run_id"], []).append(row)
            self._registered = by_run
        return self._registered.get(run_id, [])

    def key_columns_of(self, table: str) -> set[str]:
        """Every column of ``table`` that some run declared as a lineage key (either side)."""
        if self._key_columns is None:
            cols: dict[str, set[str]] = {}
            pairs_seen = self.runs[["lineage_keys_json", "output_table"]].dropna().drop_duplicates()
            for raw, out_table in pairs_seen.itertuples(index=False):
                for name, pairs in parse_lineage_keys(raw).items():
                    cols.setdefault(out_table, set()).update(p.out for p in pairs)
                    cols.setdefault(name, set()).update(p.inp for p in pairs)
            self._key_columns = cols
        return set(self._key_columns.get(table, set()))


def recorded_runs(lake: Lakehouse) -> pa.Table:
    """Every component run recorded, each once: the flushed and journaled records (a record both
    flushed and still in the journal's tail appears twice: one is kept) plus the runs still open,
    as ``started``."""
    data = lake.store.read_arrow(COMPONENT_RUNS)
    ids = data.column("run_id").to_pylist()
    seen: set[str] = set()
    keep = []
    for i, rid in enumerate(ids):
        if rid not in seen:
            seen.add(rid)
            keep.append(i)
    if len(keep) != len(ids):
        data = data.take(pa.array(keep))
    open_rows = [r.row for r in lake.journal.open_runs() if r.run_id not in seen]
    if open_rows:
        schema = COMPONENT_RUNS.schema
        extra = pa.Table.from_pylist([normalize_row({**r, "status": "started"}, schema) for r in open_rows],
                                     schema=schema)
        data = pa.concat_tables([data, extra])
    return data
