"""Reading slices of lakehouse tables for lineage queries, without Spark.

delta-rs resolves a table at a version (or a timestamp), DataFusion evaluates the user's SQL
predicate, and pyarrow filters by partitions, run ids and key values. A CLI trace therefore
costs a process start and some Parquet reads, not a JVM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import TableNotFoundError

from tracelake.lineage.layout import PARTITION_COLUMN, RUN_ID_COLUMN, Layout
from tracelake.lineage.settings import is_local_uri

__all__ = ["KEY_SEPARATOR", "SliceError", "SliceReader", "TableAt", "filter_keys", "key_strings", "plain_strings",
           "resolve_as_of"]

KEY_SEPARATOR = "\x1f"  # between the columns of a composite key (unit separator)


class SliceError(ValueError):
    """The table, version, timestamp or predicate cannot be used (said in one line)."""


@dataclass(frozen=True)
class TableAt:
    table: str
    path: str
    version: int


def resolve_as_of(as_of: str | int | None) -> int | datetime | None:
    """'12' -> version 12; an ISO time -> that instant (UTC if no zone); None -> latest."""
    if as_of is None or isinstance(as_of, int):
        return as_of
    text = str(as_of).strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SliceError(f"--as-of {text!r} is neither a version number nor an ISO time "
                         "(e.g. 12 or 2026-01-20T06:00)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _first_commit_time(dt: DeltaTable) -> datetime | None:
    """When the oldest version still in the log was committed."""
    from tracelake.lineage.record import delta_meta

    oldest = delta_meta.oldest_readable_version(dt.table_uri)
    if oldest is None:
        return None
    stamp = delta_meta.read_commit(dt.table_uri, oldest).info.get("timestamp")
    return None if stamp is None else datetime.fromtimestamp(stamp / 1000, tz=UTC)


def key_strings(table: pa.Table, columns: Sequence[str]) -> pa.Array:
    """Composite key per row as one string (values cast to text), for set membership."""
    parts = [pc.cast(table.column(c), pa.string()) for c in columns]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, KEY_SEPARATOR)


def filter_keys(data: pa.Table, where: str, key_columns: Sequence[str] | None,
                key_values: pa.Array | None) -> pa.Table:
    """Rows whose composite key is one of ``key_values`` (a missing key column is said, once)."""
    if key_columns:
        missing = [c for c in key_columns if c not in data.column_names]
        if missing:
            raise SliceError(f"{where} has no column(s) {missing} declared as lineage keys")
        if key_values is not None:
            data = data.filter(pc.is_in(key_strings(data, key_columns), value_set=key_values))
    return data


def _no_table(table: str, path: str) -> SliceError:
    return SliceError(f"no table {table!r} in the lakehouse ({path}); list them with `tracelake sql \"SHOW TABLES\"`")


class SliceReader:
    def __init__(self, layout: Layout, writers: Callable[[str, int], str | None] | None = None):
        self.layout = layout
        # (table path, commit version) -> the recorded run that made that commit; lets rows of
        # tables written outside Tracelake (no _tl_run_id column) be attributed (_by_writer).
        self._writers = writers
        self._added_in: dict[str, dict[str, int]] = {}
        self._scanned: dict[str, int] = {}
        self._tables: dict[tuple[str, int], DeltaTable] = {}
        self._datasets: dict[tuple[str, int], ds.Dataset] = {}
        self._files: dict[tuple[str, int], dict[str | None, list[str]] | None] = {}
        self._stats_cache: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
        self._schemas: dict[tuple[str, int], pa.Schema] = {}

    def table_at(self, table: str, as_of: int | datetime | None = None) -> TableAt:
        """The table at a version, or at the newest version committed at or before a time.

        A version that does not exist, or a time before the table's first commit, is said in one
        line - never answered silently with some other version.
        """
        path = self.layout.table(table)
        if as_of is None or isinstance(as_of, int):
            latest = self._latest(table, path)
            if isinstance(as_of, int) and not 0 <= as_of <= latest:
                raise SliceError(f"{table} has no version {as_of}: its versions are 0..{latest}")
            version = latest if as_of is None else as_of
            self._dt(path, version)
            return TableAt(table, path, version)
        try:
            dt = DeltaTable(path)
        except TableNotFoundError:
            raise _no_table(table, path) from None
        first = _first_commit_time(dt)
        if first is not None and as_of < first:
            raise SliceError(f"{table} did not exist at {as_of.isoformat()}: its first version was "
                             f"committed at {first.isoformat()}")
        dt.load_as_version(as_of)
        version = dt.version()
        self._tables[(path, version)] = dt
        return TableAt(table, path, version)

    def _latest(self, table: str, path: str) -> int:
        """The table's newest version. The snapshot is opened once per version, so a service or
        notebook asking about the same table again reuses it (opening a table of ~26,000 files
        costs ~0.5 s every time). On a local disk the newest version comes from the log's listing
        (a few file stats); on an object store that listing costs an open, whose snapshot is kept."""
        if is_local_uri(path):
            from tracelake.lineage.record import delta_meta

            latest = delta_meta.latest_version(path)
            if latest is None:
                raise _no_table(table, path)
            return latest
        try:
            dt = DeltaTable(path)
        except TableNotFoundError:
            raise _no_table(table, path) from None
        self._tables.setdefault((path, dt.version()), dt)
        return dt.version()

    def _dt(self, path: str, version: int) -> DeltaTable:
        key = (path, version)
        if key not in self._tables:
            self._tables[key] = DeltaTable(path, version=version)
        return self._tables[key]

    def _skip_by_stats(self, path: str, version: int, files: list[str], key_columns: Sequence[str],
                       key_values: pa.Array) -> list[str]:
        """Drop files whose Delta min/max statistics exclude every key value (data skipping).

        Only single string keys are pruned; anything else keeps every file (correct, slower).
        """
        if len(key_columns) != 1:
            return files
        column = key_columns[0]
        stats = self._stats(path, version)
        lo, hi = stats.get(f"min.{column}"), stats.get(f"max.{column}")
        if lo is None or hi is None:
            return files
        values = sorted(v for v in key_values.to_pylist() if v is not None)
        if not values:
            return []
        import bisect

        keep = []
        for f in files:
            a, b = lo.get(f), hi.get(f)
            if not isinstance(a, str) or not isinstance(b, str):
                keep.append(f)
                continue
            i = bisect.bisect_left(values, a)
            if i < len(values) and values[i] <= b:
                keep.append(f)
        return keep

    def _stats(self, path: str, version: int) -> dict[str, dict[str, Any]]:
        key = (path, version)
        if key not in self._stats_cache:
            from tracelake.lineage.record.delta_meta import pinned_files

            pinned = pinned_files(path, version)
            actions = pa.table(self._dt(path, version).get_add_actions(flatten=True))
            out: dict[str, dict[str, Any]] = {}
            if pinned is not None:
                for name in actions.column_names:
                    if (name.startswith(("min.", "max.")) and pa.types.is_string(actions.schema.field(name).type)) or \
                            (name.startswith(("min.", "max.")) and pa.types.is_large_string(actions.schema.field(name).type)):
                        out[name] = dict(zip(pinned.files, actions.column(name).to_pylist(), strict=True))
            self._stats_cache[key] = out
        return self._stats_cache[key]

    def _schema(self, path: str, version: int) -> pa.Schema:
        key = (path, version)
        if key not in self._schemas:
            self._schemas[key] = pa.schema(self._dt(path, version).schema().to_arrow())
        return self._schemas[key]

    def _partition_files(self, path: str, version: int) -> dict[str | None, list[str]] | None:
        """partition value -> data files, for plain partitioned local tables (else None)."""
        key = (path, version)
        if key not in self._files:
            from tracelake.lineage.record.delta_meta import pinned_files

            pinned = pinned_files(path, version)
            if pinned is None or PARTITION_COLUMN not in pinned.partition_columns:
                self._files[key] = None
            else:
                mapping: dict[str | None, list[str]] = {}
                for value, file in zip(pinned.partition_values or [], pinned.files, strict=False):
                    mapping.setdefault(value, []).append(file)
                self._files[key] = mapping
        return self._files[key]

    def select(self, at: TableAt, predicate: str, columns: Iterable[str]) -> pa.Table:
        """Rows of ``at`` matching a SQL predicate (DataFusion dialect), only ``columns``."""
        dt = self._dt(at.path, at.version)
        available = set(dt.schema().to_arrow().names) if hasattr(dt.schema(), "to_arrow") else None
        cols = [c for c in dict.fromkeys([RUN_ID_COLUMN, *columns]) if available is None or c in available]
        sql = f'SELECT {", ".join(_quote(c) for c in cols)} FROM t WHERE {predicate}'
        try:
            reader = QueryBuilder().register("t", dt).execute(sql)
            data = pa.table(reader.read_all())
        except Exception as exc:  # classified: a missing file is not a wrong predicate
            if _unreadable(exc):
                raise _gone(at.table, at.version, exc) from exc
            if _io_failure(exc):   # the storage failed: not the user's predicate, not a lost version
                raise SliceError(f"cannot read {at.table}@v{at.version}: {str(exc).splitlines()[0][:200]} "
                                 "(check access to the lakehouse's storage, then ask again)") from exc
            raise SliceError(f"cannot evaluate --where {predicate!r} on {at.table}: {str(exc).splitlines()[0][:200]}") from None
        if available is not None and RUN_ID_COLUMN not in available and self._writers is not None:
            data = self._with_single_writer(at, data)
        return plain_strings(data)

    def rows(self, path: str, version: int, columns: Iterable[str], *, partitions: Sequence[str] | None = None,
             run_ids: Iterable[str] | None = None, key_columns: Sequence[str] | None = None,
             key_values: pa.Array | None = None) -> pa.Table:
        """Rows of a table version, filtered by partitions, writer runs and/or composite key values."""
        try:
            return self._rows(path, version, columns, partitions, run_ids, key_columns, key_values)
        except (OSError, pa.ArrowException) as exc:
            if _unreadable(exc):
                raise _gone(path.rstrip("/").rsplit("/", 1)[-1], version, exc) from exc
            raise

    def _rows(self, path: str, version: int, columns: Iterable[str], partitions: Sequence[str] | None,
              run_ids: Iterable[str] | None, key_columns: Sequence[str] | None,
              key_values: pa.Array | None) -> pa.Table:
        key = (path, version)
        table_schema = self._schema(path, version)
        names = set(table_schema.names)
        cols = [c for c in dict.fromkeys([RUN_ID_COLUMN, *columns, *(key_columns or [])]) if c in names]
        run_filter = ds.field(RUN_ID_COLUMN).isin(list(run_ids)) if run_ids is not None else None
        files = self._partition_files(path, version) if partitions is not None else None
        if RUN_ID_COLUMN not in names and self._writers is not None:
            data = self._by_writer(path, version, table_schema, cols, run_ids)
        elif files is not None and partitions is not None and PARTITION_COLUMN not in cols:
            # Open only the files of the wanted partitions: filtering a dataset of tens of
            # thousands of fragments by partition costs far more than reading a few files.
            chosen = [f for p in partitions for f in files.get(p, [])]
            if key_columns and key_values is not None and len(chosen) > 8:
                chosen = self._skip_by_stats(path, version, chosen, key_columns, key_values)
            schema = pa.schema([table_schema.field(c) for c in cols])
            data = ds.dataset(chosen, schema=schema, format="parquet").to_table(columns=cols, filter=run_filter) \
                if chosen else schema.empty_table()
        else:
            dataset = self._datasets.get(key)
            if dataset is None:
                dataset = self._datasets[key] = self._dt(path, version).to_pyarrow_dataset()
            flt = run_filter
            if partitions is not None and PARTITION_COLUMN in names:
                part_filter = ds.field(PARTITION_COLUMN).isin(list(partitions))
                flt = part_filter if flt is None else part_filter & flt
            data = dataset.to_table(columns=cols, filter=flt)
        return filter_keys(plain_strings(data), f"{path}@v{version}", key_columns, key_values)


    # -- tables written outside Tracelake (external runs: no _tl_run_id column) ----------------------
    def _file_writers(self, path: str, version: int) -> dict[str, str]:
        """Data file of ``version`` -> the run that wrote it: the recorded writer of the commit that
        added the file. Files no recorded run added read as ``unrecorded:<table>@v<N>``."""
        from tracelake.lineage.record import delta_meta
        from tracelake.lineage.settings import to_local_path

        pinned = delta_meta.pinned_files(path, version)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if pinned is None:
            raise SliceError(f"{name}@v{version} has no {RUN_ID_COLUMN} column and is not a plain local Delta table, "
                             "so its rows cannot be attributed to the runs that wrote them")
        added = self._added_in.setdefault(path, {})
        for v in range(self._scanned.get(path, -1) + 1, version + 1):
            try:
                commit = delta_meta.read_commit(path, v)
            except delta_meta.CommitMissing:  # log cleaned up before a checkpoint: those files stay unattributed
                continue
            for add in commit.adds:
                added[unquote(add["path"])] = v
        self._scanned[path] = max(self._scanned.get(path, -1), version)
        root = str(to_local_path(path)).rstrip("/") + "/"
        out = {}
        for file in pinned.files:
            added_at = added.get(file[len(root):])
            out[file] = (self._writers(path, added_at) if added_at is not None and self._writers else None) or \
                f"unrecorded:{name}@v{added_at if added_at is not None else '?'}"
        return out

    def _by_writer(self, path: str, version: int, table_schema: pa.Schema, cols: list[str],
                   run_ids: Iterable[str] | None) -> pa.Table:
        """Rows of a table without ``_tl_run_id``, each with the run that wrote its file added as
        that column (``run_ids``: only those runs' files are read)."""
        wanted = set(run_ids) if run_ids is not None else None
        groups: dict[str, list[str]] = {}
        for file, run in self._file_writers(path, version).items():
            if wanted is None or run in wanted:
                groups.setdefault(run, []).append(file)
        schema = pa.schema([table_schema.field(c) for c in cols])
        parts = []
        for run, files in sorted(groups.items()):
            part = ds.dataset(files, schema=schema, format="parquet").to_table(columns=cols)
            parts.append(part.append_column(RUN_ID_COLUMN, pa.array([run] * part.num_rows, pa.string())))
        return pa.concat_tables(parts) if parts else schema.append(pa.field(RUN_ID_COLUMN, pa.string())).empty_table()

    def _with_single_writer(self, at: TableAt, data: pa.Table) -> pa.Table:
        """A slice of a table without ``_tl_run_id``: its writer, when one run wrote all its rows."""
        writers = set(self._file_writers(at.path, at.version).values())
        if len(writers) > 1:
            raise SliceError(f"{at.table}@v{at.version} has no {RUN_ID_COLUMN} column and its rows come from "
                             f"{len(writers)} runs, so a slice of it cannot be split between them; trace a table "
                             "that reads it, or a version one run wrote")
        run = next(iter(writers), f"unrecorded:{at.table}@v{at.version}")
        return data.append_column(RUN_ID_COLUMN, pa.array([run] * data.num_rows, pa.string()))


_MISSING_FILE = ("no such file", "not found", "does not exist", "failed to open local file", "no such object")
# How a storage failure reads once DataFusion has wrapped it (its errors are not OSErrors).
_IO_FAILURE = ("permission denied", "access denied", "io error", "object store", "connection refused", "timed out")


def _unreadable(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, FileNotFoundError) or any(m in text for m in _MISSING_FILE)


def _io_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, OSError) or any(m in text for m in _IO_FAILURE)


def _gone(table: str, version: int, exc: BaseException) -> SliceError:
    return SliceError(f"{table}@v{version} can no longer be read: a data file it needs is missing "
                      f"({str(exc).splitlines()[0][:160]}); run `tracelake retention verify` to see what was lost")


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def plain_strings(table: pa.Table) -> pa.Table:
    """DataFusion returns string_view; pyarrow kernels and pandas want plain strings."""
    fields, cols = [], []
    for field, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_string_view(field.type) or pa.types.is_large_string(field.type):
            col = pc.cast(col, pa.string())
            field = field.with_type(pa.string())
        fields.append(field)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))
