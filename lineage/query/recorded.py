"""A lineage hop read from the files the audit records name - without rebuilding the table.

The slow way to answer "the rows of ``trip_features@v812``, partitions 2025-03-14" is to rebuild
that version's snapshot from the Delta log (a checkpoint plus up to nine commits: ~80 ms a
version on a 1,000-version table) and list its files; a trace opens dozens of versions, an
impact hundreds. But the records already say everything needed:

- **who**: which run's rows each partition holds at any version - partition writes replace,
  appends accumulate, an overwrite replaces all, and a rolled-back run hands its partition back
  to the run it had replaced (``AuditIndex``);
- **where**: the data files each run's commit added (``output_added_files``, the commit's add
  actions, recorded when it landed) and the schema it wrote (``output_schema_json``).

So a hop opens exactly the Parquet files of the runs whose rows are live, and nothing else. The
answer is the same rows the snapshot would give, because those files are exactly what that
version holds for those runs: files a commit added never change; OPTIMIZE rewrites rows into
new files with the same content (the originals stay for the retention horizon); a rollback
restores the replaced run's rows, which are that run's own files.

When the records cannot vouch for a version, the caller falls back to the snapshot (``None``):
a record without the field (written before it existed, or by an external producer), a table
written in mixed modes, a table without ``_tl_run_id``, a remote table, a recorded file that is
gone (vacuumed), or a commit no record accounts for that changed data or metadata at or before
the version asked (a manual DELETE, an external writer). Commits nobody recorded are read once
each, from the log, to tell OPTIMIZE (``dataChange: false``) from a real change.
"""

from __future__ import annotations

import bisect
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from tracelake.lineage.layout import PARTITION_COLUMN, RUN_ID_COLUMN, Layout
from tracelake.lineage.query.file_stats import FileStats, KeyFilter
from tracelake.lineage.query.graph import AuditIndex
from tracelake.lineage.query.slices import filter_keys, plain_strings

__all__ = ["FileCache", "RecordedFiles"]

_WHOLE = None  # a foreign commit that touched the whole table (or its metadata)
# A keyed hop over this many files reads the table's file statistics (once per walker) to skip
# files: loading them costs about what reading a few hundred small files does.
PRUNE_FROM_FILES = 256
_PARQUET = ds.ParquetFileFormat()
_LOCAL_FS = pafs.LocalFileSystem()


@dataclass
class _TableFacts:
    """Per table, once: the versions no record accounts for, and what each of them changed."""

    unknown: list[int] = field(default_factory=list)
    changed: dict[int, frozenset[str] | None] = field(default_factory=dict)  # version -> partitions (None: all)


class RecordedFiles:
    """Rows of a table version from the records' file lists (see the module docstring)."""

    def __init__(self, index: AuditIndex, layout: Layout, *, cache_bytes: int = 128 * 1024 * 1024):
        self.index = index
        self.layout = layout
        self._facts: dict[str, _TableFacts] = {}
        self._schemas: dict[str, pa.Schema] = {}
        self.cache = FileCache(cache_bytes)
        self.stats = FileStats()
        self.prune_from_files = PRUNE_FROM_FILES

    def rows(self, path: str, version: int, columns: Iterable[str], *, partitions: Sequence[str] | None = None,
             run_ids: Iterable[str] | None = None, key_columns: Sequence[str] | None = None,
             key_values: pa.Array | None = None) -> pa.Table | None:
        """Same answer as ``SliceReader.rows``, or None when the records cannot say (fall back)."""
        table = self.index.table_of_path(path) if self.layout.is_local else None
        if table is None:
            return None
        keys = (key_columns, key_values) if key_columns and key_values is not None else None
        files = self.files(table, path, version, partitions, run_ids, keys)
        schema = self._schema(table, version) if files is not None else None
        if files is None or schema is None or RUN_ID_COLUMN not in schema.names:
            return None
        cols = [c for c in dict.fromkeys([RUN_ID_COLUMN, *columns, *(key_columns or [])]) if c in schema.names]
        data = self._read(files, schema, cols)
        if data is None:
            return None
        return filter_keys(plain_strings(data), f"{path}@v{version}", key_columns, key_values)

    # -- which files ---------------------------------------------------------------------------------
    def files(self, table: str, path: str, version: int, partitions: Sequence[str] | None,
              run_ids: Iterable[str] | None, keys: tuple[Sequence[str], pa.Array] | None = None,
              ) -> dict[str | None, list[str]] | None:
        """Partition value -> absolute paths of the files holding the live rows of ``run_ids``
        (everyone's, if None) in ``table`` at ``version``; None when the records cannot say.
        Given the hop's ``keys`` (columns, values), a hop over many files leaves out those whose
        Delta statistics rule out every key looked for (``file_stats``)."""
        if self._foreign_change(table, path, version, partitions):
            return None
        live = self._live(table, version, partitions)
        if live is None:
            return None
        runs = None if run_ids is None else set(run_ids)
        root = str(self.layout.local_path(path)).rstrip("/") + "/"
        chosen: list[tuple[str | None, str]] = []
        for run, parts in live.items():
            if runs is not None and run not in runs:
                continue
            added = self.index.added_files(run)
            if added is None:
                return None
            for f in added:
                p = f["partition"]
                if (parts is None or p in parts) and (partitions is None or p is None or p in partitions):
                    chosen.append((p, f["path"]))
        wanted = KeyFilter.of(*keys) if keys is not None and len(chosen) >= self.prune_from_files else None
        if wanted is not None:
            keep = set(self.stats.prune(root, [f for _, f in chosen], wanted))
            chosen = [(p, f) for p, f in chosen if f in keep]
        out: dict[str | None, list[str]] = {}
        for p, f in chosen:
            out.setdefault(p, []).append(root + f)
        return out

    def _live(self, table: str, version: int, partitions: Sequence[str] | None) -> dict[str, set | None] | None:
        """Run -> the partitions of it that are live (None: all it wrote), per the records."""
        index = self.index
        modes = index.write_modes(table)
        if len(modes) != 1:
            return None  # mixed modes interleave replacements the per-mode rules do not cover
        mode = next(iter(modes))
        if mode == "append":
            return dict.fromkeys(index.appends_live_at(table, version))
        if mode == "overwrite":
            run = index.overwrite_live_at(table, version)
            return {} if run is None else {run: None}
        live: dict[str, set | None] = {}
        for part in index.partitions_written(table) if partitions is None else partitions:
            run = index.current_writer(table, part, version)
            if run is not None:
                live.setdefault(run, set()).add(part)  # type: ignore[union-attr]
        return live

    def _foreign_change(self, table: str, path: str, version: int, partitions: Sequence[str] | None) -> bool:
        """Did a commit no record accounts for change data (or metadata) at or before ``version``,
        in the partitions asked for?"""
        facts = self._table_facts(table, path)
        wanted = None if partitions is None else set(partitions)
        for v in facts.unknown[:bisect.bisect_right(facts.unknown, version)]:
            if v not in facts.changed:
                facts.changed[v] = _what_changed(path, v)
            touched = facts.changed[v]
            if touched is _WHOLE:
                return True
            if touched and (wanted is None or touched & wanted):  # empty: no data changed (OPTIMIZE)
                return True
        return False

    def _table_facts(self, table: str, path: str) -> _TableFacts:
        facts = self._facts.get(table)
        if facts is None:
            from tracelake.lineage.record import delta_meta

            latest = delta_meta.latest_version(path)
            known = self.index.recorded_versions(table)
            facts = _TableFacts(unknown=[] if latest is None else [v for v in range(latest + 1) if v not in known])
            self._facts[table] = facts
        return facts

    # -- reading --------------------------------------------------------------------------------------
    def _schema(self, table: str, version: int) -> pa.Schema | None:
        """The table's schema at ``version``: the one its newest recorded commit wrote."""
        run = self.index.newest_write_before(table, version)
        text = None if run is None else self.index.value(run, "output_schema_json")
        if not text:
            return None
        if text not in self._schemas:
            self._schemas[text] = _arrow_schema(text)
        return self._schemas[text]

    def _read(self, files: dict[str | None, list[str]], schema: pa.Schema, cols: list[str]) -> pa.Table | None:
        """Read the files (only ``cols``); the partition column comes from the record, not the file."""
        in_files = [c for c in cols if c != PARTITION_COLUMN]
        file_schema = pa.schema([schema.field(c) for c in in_files])
        parts = []
        try:
            groups = files.items() if PARTITION_COLUMN in cols else [(None, [f for fs in files.values() for f in fs])]
            for value, paths in groups:
                data = self.cache.read(paths, file_schema) if paths else file_schema.empty_table()
                if PARTITION_COLUMN in cols:
                    data = data.append_column(schema.field(PARTITION_COLUMN),
                                              pa.array([value] * data.num_rows, schema.field(PARTITION_COLUMN).type))
                parts.append(data.select(cols))
        except (OSError, pa.ArrowException):
            return None  # a recorded file is gone or unreadable: the snapshot decides (and says why)
        if not parts:
            return pa.schema([schema.field(c) for c in cols]).empty_table()
        return pa.concat_tables(parts)


class FileCache:
    """The columns already read from each data file, kept for the walker's later questions.

    A Delta data file never changes once a commit added it (a rewrite is a new file with a new
    name), so what was read from a path stays true for as long as the process lives. Bounded by
    bytes, least recently used first out: a warm walker answering question after question reads
    each file once - the runs a trace or an impact passes through (a model's training data, the
    days around an incident) are largely the same from one question to the next."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.used = 0
        self.hits = 0       # files answered from memory
        self._tables: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], pa.Table] = OrderedDict()

    def read(self, paths: Sequence[str], file_schema: pa.Schema) -> pa.Table:
        shape = tuple((f.name, str(f.type)) for f in file_schema)
        found: dict[str, pa.Table] = {}
        for p in paths:
            table = self._tables.get((p, shape))
            if table is not None:
                self._tables.move_to_end((p, shape))
                found[p] = table
                self.hits += 1
        missing = [p for p in paths if p not in found]
        if missing:
            # One scan of the unread files (pyarrow reads them in parallel), its batches sorted
            # back to the file each came from, so each file is cached on its own.
            batches: dict[str, list[pa.RecordBatch]] = {p: [] for p in missing}
            named = {os.path.normpath(p): p for p in missing}
            # from_paths: no per-file inspection (the records say what the files are); more files
            # in flight than the default suits a hop's many small files (~25% faster on 168).
            dataset = ds.FileSystemDataset.from_paths(missing, schema=file_schema, format=_PARQUET,
                                                      filesystem=_LOCAL_FS)
            scanner = dataset.scanner(columns=file_schema.names, fragment_readahead=16, batch_readahead=1)
            for tagged in scanner.scan_batches():
                path = named.get(os.path.normpath(tagged.fragment.path))
                if path is None:  # never expected; the caller then answers from the snapshot
                    raise OSError(f"pyarrow read {tagged.fragment.path}, which was not asked for")
                batches[path].append(tagged.record_batch)
            for p in missing:
                found[p] = self._keep((p, shape), pa.Table.from_batches(batches[p], schema=file_schema))
        return pa.concat_tables([found[p] for p in paths]) if paths else file_schema.empty_table()

    def _keep(self, key: tuple[str, tuple[tuple[str, str], ...]], table: pa.Table) -> pa.Table:
        table = table.combine_chunks()
        self._tables[key] = table
        self.used += table.nbytes
        while self.used > self.budget and len(self._tables) > 1:
            _, old = self._tables.popitem(last=False)
            self.used -= old.nbytes
        return table


def _what_changed(path: str, version: int) -> frozenset[str] | None:
    """Partitions a commit changed data in (empty: none - OPTIMIZE, VACUUM); None: the whole table
    (an unpartitioned change, metadata or protocol, or a commit whose log file is gone)."""
    from tracelake.lineage.record import delta_meta

    try:
        commit = delta_meta.read_commit(path, version)
    except delta_meta.CommitMissing:
        return _WHOLE
    if commit.metadata is not None:
        return _WHOLE
    touched: set[str] = set()
    for action in commit.adds + commit.removes:
        if action.get("dataChange", True) is False:
            continue
        value = (action.get("partitionValues") or {}).get(PARTITION_COLUMN)
        if value is None:
            return _WHOLE
        touched.add(str(value))
    return frozenset(touched)


def _arrow_schema(text: str) -> pa.Schema:
    """A recorded schema (the fingerprint's field list, or Delta's schema JSON) as Arrow."""
    from deltalake import Schema

    parsed: Any = json.loads(text)
    fields = parsed["fields"] if isinstance(parsed, dict) else parsed
    delta = {"type": "struct", "fields": [{"metadata": {}, **f} for f in fields]}
    return pa.schema(Schema.from_json(json.dumps(delta)).to_arrow())
