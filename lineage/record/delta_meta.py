"""Read a Delta table's transaction log directly, without Spark.

The recorder must learn, on every materialisation, which version it is about to read and which
version its own write became. A Spark job for that costs hundreds of milliseconds; reading the
newest log entries costs about one. This module does that for local lakehouses and falls back
to delta-rs for object stores.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote

from deltalake import DeltaTable

from tracelake.lineage.settings import is_local_uri, to_local_path

__all__ = ["empty_partitions", "empty_commit", "Commit", "latest_version", "read_commit", "find_commit", "files_digest", "table_exists",
           "PinnedFiles", "pinned_files", "partitions_at", "schema_at", "schema_fingerprint"]

_LOG = "_delta_log"


@dataclass
class Commit:
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


def _log_dir(uri: str) -> Path:
    return to_local_path(uri) / _LOG


def table_exists(uri: str, storage_options: dict[str, str] | None = None) -> bool:
    if is_local_uri(uri):
        return _log_dir(uri).is_dir() and any(_log_dir(uri).glob("*.json"))
    return DeltaTable.is_deltatable(uri, storage_options=storage_options)


def latest_version(uri: str, storage_options: dict[str, str] | None = None) -> int | None:
    """Newest committed version, or None when no table exists at ``uri``.

    Local: start from ``_last_checkpoint`` and probe forward, so the cost does not grow with
    the number of versions (a year of hourly commits is 8,760 log files).
    """
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


def read_commit(uri: str, version: int, storage_options: dict[str, str] | None = None) -> Commit:
    if not is_local_uri(uri):
        return _read_commit_remote(uri, version, storage_options)
    path = _log_dir(uri) / f"{version:020d}.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Delta commit {version} of {uri} is not in the log (never written, or log cleaned up)"
        ) from None
    return _parse_commit(version, text.splitlines())


def _parse_commit(version: int, lines: Iterable[str]) -> Commit:
    commit = Commit(version=version, info={})
    for line in lines:
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


def _read_commit_remote(uri: str, version: int, storage_options: dict[str, str] | None) -> Commit:
    # delta-rs exposes snapshots, not single commits: diff the add actions of v and v-1.
    dt = DeltaTable(uri, version=version, storage_options=storage_options)
    history = {h["version"]: h for h in dt.history(limit=1)}
    now = {a["path"]: a for a in dt.get_add_actions(flatten=False).to_pylist()}
    before: set[str] = set()
    if version > 0:
        prev = DeltaTable(uri, version=version - 1, storage_options=storage_options)
        before = {a["path"] for a in prev.get_add_actions(flatten=False).to_pylist()}
    adds = [
        {"path": p, "size": a.get("size_bytes"), "stats": json.dumps({"numRecords": a.get("num_records")})}
        for p, a in now.items() if p not in before
    ]
    return Commit(version=version, info=history.get(version, {}), adds=adds)


def find_commit(
    uri: str,
    run_id: str,
    *,
    newest: int | None = None,
    oldest: int = 0,
    storage_options: dict[str, str] | None = None,
) -> Commit | None:
    """The commit whose ``userMetadata`` names ``run_id``, searching newest first."""
    newest = latest_version(uri, storage_options) if newest is None else newest
    if newest is None:
        return None
    for v in range(newest, max(oldest, 0) - 1, -1):
        try:
            commit = read_commit(uri, v, storage_options)
        except FileNotFoundError:
            break
        if commit.user_metadata.get("tracelake_run_id") == run_id:
            return commit
    return None


def files_digest(uri: str, commit: Commit) -> str:
    """sha256 over (path, size, sha256 of bytes) of every file the commit added.

    Recorded at write time; the retention job recomputes it years later to prove the files a
    version is made of are still there and unchanged. Local lakehouses hash the bytes; object
    stores fall back to path+size (re-reading every object would double the write cost).
    """
    h = hashlib.sha256()
    for add in sorted(commit.adds, key=lambda a: a["path"]):
        h.update(f"{add['path']}\t{add.get('size')}\t".encode())
        if is_local_uri(uri):
            fh = hashlib.sha256()
            with open(to_local_path(uri) / unquote(add["path"]), "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    fh.update(chunk)
            h.update(fh.hexdigest().encode())
        h.update(b"\n")
    return h.hexdigest()


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
                 partition_column: str = "_tl_partition") -> PinnedFiles | None:
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
    import pyarrow as pa

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


def partitions_at(uri: str, version: int, partition_column: str = "_tl_partition") -> list[str] | None:
    """Partition values present at ``version``, or None when the table is not partitioned by it."""
    dt = DeltaTable(uri, version=version)
    if partition_column not in dt.metadata().partition_columns:
        return None
    return sorted({p[partition_column] for p in dt.partitions()})


def schema_at(uri: str, version: int, storage_options: dict[str, str] | None = None) -> str:
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
        except FileNotFoundError:
            break
        part = commit.user_metadata.get("partition")
        if part in wanted and not commit.adds:
            found.add(part)
    return found


def empty_commit(uri: str, user_metadata: str, storage_options: dict[str, str] | None = None) -> None:
    """Commit nothing but a commitInfo naming the run.

    Spark's Delta writer makes no commit for an empty append to an existing table; a run that
    legitimately produced no rows (no labels arrived today) must still be one version.
    """
    import pyarrow as pa
    from deltalake import CommitProperties, write_deltalake

    dt = DeltaTable(uri, storage_options=storage_options)
    schema = pa.schema(dt.schema().to_arrow())
    write_deltalake(uri, schema.empty_table(), mode="append", storage_options=storage_options,
                    partition_by=list(dt.metadata().partition_columns) or None,
                    commit_properties=CommitProperties(custom_metadata={"userMetadata": user_metadata}))
