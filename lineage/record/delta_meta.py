"""Delta metadata without Spark: versions, commits, partitions, schemas and pinned file lists.

Spark is the data path only. Everything the recorder and the queries need to *know* about a
table - which version is newest, which commit a run made, which files make up a version - comes
from here, and from delta-rs wherever delta-rs offers the answer (a snapshot at a version: its
files, partitions, schema and protocol; the table history; writes of empty commits).

Two things are read by hand, and why:

- **the newest version of a local table.** delta-rs loads the whole snapshot (the file list) to
  tell the version: 3.5 ms on a 400-version table, growing with the number of files, and the
  recorder asks several times per materialisation. Reading ``_last_checkpoint`` and probing the
  next log names costs 0.04 ms. Object stores go through delta-rs (a listing is a network call
  either way).
- **the actions of one commit** (the files it added, its ``commitInfo``). delta-rs exposes
  snapshots and history, not the add actions of a single commit; the commit's JSON file is read
  through pyarrow's filesystem layer, so local folders and object stores behave the same.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable

from tracelake.lineage.settings import is_local_uri, to_local_path

__all__ = [
    "PARTITION_COLUMN",
    "Commit",
    "CommitMissing",
    "PinnedFiles",
    "added_files",
    "empty_commit",
    "empty_partitions",
    "files_digest",
    "find_commit",
    "latest_version",
    "oldest_readable_version",
    "partitions_at",
    "pinned_files",
    "read_commit",
    "schema_at",
    "schema_fingerprint",
    "table_exists",
]

_LOG = "_delta_log"
PARTITION_COLUMN = "_tl_partition"
Options = dict[str, str] | None


class CommitMissing(FileNotFoundError):
    """A commit that is not in the table's log (never written, or its log file was removed)."""


@dataclass
class Commit:
    """The actions of one Delta commit."""

    version: int
    info: dict[str, Any]
    adds: list[dict[str, Any]] = field(default_factory=list)
    removes: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None

    @property
    def user_metadata(self) -> dict[str, Any]:
        raw = self.info.get("userMetadata")
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            return {"raw": raw}
        return value if isinstance(value, dict) else {"raw": raw}

    @property
    def run_id(self) -> str | None:
        """The Tracelake run the commit names (None for a commit no run made)."""
        value = self.user_metadata.get("tracelake_run_id")
        return str(value) if value else None

    @property
    def rows_added(self) -> int | None:
        total = 0
        for add in self.adds:
            stats = add.get("stats")
            if not stats:
                return None
            total += int(json.loads(stats).get("numRecords", 0))
        return total

    @property
    def bytes_added(self) -> int:
        return sum(int(a.get("size", 0)) for a in self.adds)

    def partitions_touched(self) -> set[str]:
        """Values of the partition column of every file the commit added or removed."""
        return {str(a.get("partitionValues", {}).get(PARTITION_COLUMN)) for a in self.adds + self.removes
                if a.get("partitionValues", {}).get(PARTITION_COLUMN) is not None}


def _log_dir(uri: str) -> Path:
    return to_local_path(uri) / _LOG


def _filesystem(uri: str):
    from tracelake.lineage.settings import arrow_filesystem

    return arrow_filesystem(uri)


def table_exists(uri: str, storage_options: Options = None) -> bool:
    if is_local_uri(uri):
        return _log_dir(uri).is_dir() and any(_log_dir(uri).glob("*.json"))
    return DeltaTable.is_deltatable(uri, storage_options=storage_options)


def latest_version(uri: str, storage_options: Options = None) -> int | None:
    """Newest committed version, or None when no table exists at ``uri`` (see the module doc)."""
    if not is_local_uri(uri):
        if not DeltaTable.is_deltatable(uri, storage_options=storage_options):
            return None
        return DeltaTable(uri, storage_options=storage_options).version()
    log = _log_dir(uri)
    if not log.is_dir():
        return None
    start = -1
    last_cp = log / "_last_checkpoint"
    if last_cp.exists():
        try:
            start = int(json.loads(last_cp.read_text())["version"])
        except (ValueError, KeyError, OSError):
            start = -1
    if start < 0:
        versions = [int(p.name[:20]) for p in os.scandir(log) if p.name.endswith(".json") and p.name[:20].isdigit()]
        if not versions:
            return None
        start = max(versions)
    v = start
    while (log / f"{v + 1:020d}.json").exists():
        v += 1
    if not (log / f"{v:020d}.json").exists() and not any(log.glob(f"{v:020d}.checkpoint*.parquet")):
        return None
    return v


def oldest_readable_version(uri: str) -> int | None:
    """The oldest version whose state can still be rebuilt from the log: 0 while commit 0 is
    there, else the oldest checkpoint (after log cleanup, nothing before it can be read)."""
    latest = latest_version(uri)
    if latest is None:
        return None
    if is_local_uri(uri):
        names = [p.name for p in os.scandir(_log_dir(uri))]
    else:
        from pyarrow import fs as pafs

        filesystem, root = _filesystem(uri)
        names = [i.base_name for i in filesystem.get_file_info(pafs.FileSelector(f"{root.rstrip('/')}/{_LOG}"))]
    versions = sorted(int(n[:20]) for n in names if n.endswith(".json") and n[:20].isdigit())
    checkpoints = sorted(int(n[:20]) for n in names if ".checkpoint" in n and n.endswith(".parquet") and n[:20].isdigit())
    if versions and versions[0] == 0:
        return 0
    return checkpoints[0] if checkpoints else (versions[0] if versions else latest)


def _read_log_file(uri: str, version: int) -> str:
    name = f"{version:020d}.json"
    if is_local_uri(uri):
        try:
            return (_log_dir(uri) / name).read_text()
        except FileNotFoundError:
            raise CommitMissing(f"Delta commit {version} of {uri} is not in the log "
                                "(never written, or the log was cleaned up)") from None
    filesystem, root = _filesystem(uri)
    try:
        with filesystem.open_input_stream(f"{root.rstrip('/')}/{_LOG}/{name}") as fh:
            return fh.read().decode()
    except (FileNotFoundError, OSError) as exc:
        if "not found" in str(exc).lower() or isinstance(exc, FileNotFoundError):
            raise CommitMissing(f"Delta commit {version} of {uri} is not in the log") from None
        raise


def read_commit(uri: str, version: int, storage_options: Options = None) -> Commit:
    """The actions of commit ``version``; :class:`CommitMissing` if its log file is gone."""
    commit = Commit(version=version, info={})
    for line in _read_log_file(uri, version).splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        if "commitInfo" in action:
            commit.info = action["commitInfo"]
        elif "add" in action:
            commit.adds.append(action["add"])
        elif "remove" in action:
            commit.removes.append(action["remove"])
        elif "metaData" in action:
            commit.metadata = action["metaData"]
    return commit


def find_commit(uri: str, run_id: str, *, newest: int | None = None, oldest: int = 0,
                storage_options: Options = None) -> Commit | None:
    """The commit whose ``userMetadata`` names ``run_id``, searching newest first."""
    newest = latest_version(uri, storage_options) if newest is None else newest
    if newest is None:
        return None
    for v in range(newest, max(oldest, 0) - 1, -1):
        try:
            commit = read_commit(uri, v, storage_options)
        except CommitMissing:
            break
        if commit.run_id == run_id:
            return commit
    return None


def files_digest(uri: str, commit: Commit) -> str:
    """sha256 over (path, size, sha256 of the bytes) of every file the commit added.

    Recorded at write time; verification recomputes it later to prove the files a version is
    made of are still there and unchanged. Read through pyarrow's filesystem layer, so a local
    folder and an object store give the same digest for the same bytes.
    """
    h = hashlib.sha256()
    remote = None if is_local_uri(uri) else _filesystem(uri)
    for add in sorted(commit.adds, key=lambda a: a["path"]):
        h.update(f"{add['path']}\t{add.get('size')}\t".encode())
        fh = hashlib.sha256()
        if remote is None:
            with open(to_local_path(uri) / unquote(add["path"]), "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    fh.update(chunk)
        else:
            filesystem, root = remote
            with filesystem.open_input_stream(f"{root.rstrip('/')}/{unquote(add['path'])}") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    fh.update(chunk)
        h.update(fh.hexdigest().encode())
        h.update(b"\n")
    return h.hexdigest()


def added_files(commit: Commit, partition_column: str = PARTITION_COLUMN) -> list[dict[str, Any]]:
    """The data files a commit added - path (relative to the table, decoded), partition value,
    rows, bytes - recorded with the run that made the commit.

    Why: a lineage hop into "the rows this run wrote" can then open exactly these files instead
    of rebuilding the table's snapshot at that version from its log (~80 ms per version of a
    1,000-version table, and a trace opens dozens). What a commit added never changes: OPTIMIZE
    rewrites rows into new files without changing them and leaves the originals for the
    retention horizon, so the list stays true for as long as the version can be read.
    """
    out = []
    for add in commit.adds:
        stats = add.get("stats")
        rows = json.loads(stats).get("numRecords") if stats else None
        out.append({"path": unquote(add["path"]), "partition": (add.get("partitionValues") or {}).get(partition_column),
                    "rows": None if rows is None else int(rows), "bytes": int(add.get("size", 0))})
    return out


@dataclass(frozen=True)
class PinnedFiles:
    """The data files that make up one version of a table (optionally some partitions)."""

    version: int
    schema_json: str
    partition_columns: list[str]
    files: list[str]
    partition_values: list[str | None] | None = None  # value of the partition column, per file


_PLAIN_READER_FEATURES: set[str] = {"timestampNtz"}


def pinned_files(uri: str, version: int, partitions: Iterable[str] | None = None,
                 partition_column: str = PARTITION_COLUMN) -> PinnedFiles | None:
    """Files of ``version`` resolved by delta-rs, or None when only a full Delta reader will do.

    Spark's own time travel rebuilds the table state with several jobs (~1 s even for tiny
    tables); listing the version's files here takes milliseconds. Only plain tables qualify:
    local paths, and no reader feature (deletion vectors, column mapping ...) that changes how
    files must be read - anything else goes through Spark's Delta reader.
    """
    if not is_local_uri(uri):
        return None
    dt = DeltaTable(uri, version=version)
    protocol = dt.protocol()
    features = set(protocol.reader_features or [])
    if protocol.min_reader_version > 1 and not features <= _PLAIN_READER_FEATURES:
        return None
    actions = pa.table(dt.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    part_col = f"partition.{partition_column}"
    values = actions.column(part_col).to_pylist() if part_col in actions.column_names else None
    if partitions is not None:
        if values is None:
            return None
        wanted = set(partitions)
        keep = [i for i, v in enumerate(values) if v in wanted]
        paths, values = [paths[i] for i in keep], [values[i] for i in keep]
    root = str(to_local_path(uri)).rstrip("/") + "/"
    files = [root + (unquote(p) if "%" in p else p) for p in paths]
    return PinnedFiles(version, dt.schema().to_json(), list(dt.metadata().partition_columns), files, values)


def partitions_at(uri: str, version: int, partition_column: str = PARTITION_COLUMN,
                  storage_options: Options = None) -> list[str] | None:
    """Partition values present at ``version``, or None when the table is not partitioned by it."""
    dt = DeltaTable(uri, version=version, storage_options=storage_options)
    if partition_column not in dt.metadata().partition_columns:
        return None
    return sorted({p[partition_column] for p in dt.partitions()})


def schema_at(uri: str, version: int, storage_options: Options = None) -> str:
    """The table schema (Delta JSON) as of ``version``."""
    return DeltaTable(uri, version=version, storage_options=storage_options).schema().to_json()


def schema_fingerprint(schema_json: str) -> tuple[str, str]:
    """(sha256, canonical JSON) of a Delta schema: column names, types and nullability in order.

    Computed from the table's own log (not from the DataFrame that was written, whose
    nullability Delta does not keep), so the retention job can recompute it years later from
    the log alone and compare.
    """
    fields = [{"name": f["name"], "type": f["type"], "nullable": bool(f.get("nullable", True))}
              for f in json.loads(schema_json)["fields"]]
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest(), text


def empty_partitions(uri: str, version: int, candidates: Iterable[str], max_scan: int = 5000) -> set[str]:
    """Which of ``candidates`` were materialised *empty* at or before ``version``.

    A partition with no files is either one that never arrived or one whose run legitimately
    wrote zero rows (no labels came in that day). Only a commit naming the partition tells
    them apart; this reads the log newest-first, and only runs when something looks missing.
    """
    wanted = set(candidates)
    found: set[str] = set()
    for v in range(version, max(-1, version - max_scan), -1):
        if not wanted - found:
            break
        try:
            commit = read_commit(uri, v)
        except CommitMissing:
            break
        part = commit.user_metadata.get("partition")
        if part in wanted and not commit.adds:
            found.add(part)
    return found


def empty_commit(uri: str, user_metadata: str, storage_options: Options = None) -> None:
    """Commit nothing but a commitInfo naming the run.

    Spark's Delta writer makes no commit for an empty append to an existing table; a run that
    legitimately produced no rows (no labels arrived today) must still be one version.
    """
    from deltalake import CommitProperties, write_deltalake

    dt = DeltaTable(uri, storage_options=storage_options)
    schema = pa.schema(dt.schema().to_arrow())
    write_deltalake(uri, schema.empty_table(), mode="append", storage_options=storage_options,
                    partition_by=list(dt.metadata().partition_columns) or None,
                    commit_properties=CommitProperties(custom_metadata={"userMetadata": user_metadata}))
