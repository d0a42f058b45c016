"""Every commit of every data table was made by someone the record knows.

The audit record claims, for each run, the table version it committed; the table's log holds the
commits themselves. Verification reads both ways: a commit no run claims (a ``DELETE`` made
through some other door), a commit that names a run whose record claims a different version (a
forged ``userMetadata``), and a rollback that no failed run asked for are all named. Also the
bytes: each version a run recorded is hashed again and compared with the digest taken when it
was written, so a data file rewritten or deleted in any version - not only the oldest - is found.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.record import delta_meta

__all__ = ["commit_problems", "digest_problems"]

# Operations that change no rows and that Delta or delta-rs write on their own (or the guarded
# maintenance commands do); they are facts to list, not tampering.
_HOUSEKEEPING = {"VACUUM START", "VACUUM END", "OPTIMIZE", "CREATE TABLE", "UPGRADE PROTOCOL", "CHECKPOINT"}


def _claims(runs: pd.DataFrame) -> dict[tuple[str, int], tuple[str, str]]:
    """(table, version) -> (run id, what the record says that version is)."""
    claims: dict[tuple[str, int], tuple[str, str]] = {}
    for rec in runs.to_dict("records"):
        for table_field, version_field, what in (("output_table", "output_version", "output"),
                                                 ("quarantine_table", "quarantine_version", "quarantine"),
                                                 ("rejected_table", "rejected_version", "rejected"),
                                                 ("output_table", "rolled_back_version", "rollback")):
            table, version = rec.get(table_field), rec.get(version_field)
            if table is not None and version is not None and version == version:
                claims[(str(table), int(version))] = (rec["run_id"], what)
    return claims


def commit_problems(lake: Lakehouse, runs: pd.DataFrame, tables: dict[str, str],
                    open_runs: set[str]) -> tuple[list[str], list[str]]:
    """(problems, notes) for the commits of every data table in ``tables`` (name -> path)."""
    claims = _claims(runs)
    known = dict(zip(runs["run_id"], runs["status"], strict=True)) if not runs.empty else {}
    problems: list[str] = []
    notes: list[str] = []
    for table, path in sorted(tables.items()):
        oldest = delta_meta.oldest_readable_version(path)
        latest = delta_meta.latest_version(path)
        if oldest is None or latest is None:
            continue
        audited = any(t == table for t, _ in claims)
        for version in range(oldest, latest + 1):
            try:
                commit = delta_meta.read_commit(path, version)
            except delta_meta.CommitMissing:
                problems.append(f"{table}@v{version}: its commit is missing from the log")
                continue
            problem = _judge(table, version, commit, claims, known, open_runs, audited)
            if problem is None:
                continue
            (notes if problem.startswith("note: ") else problems).append(problem.removeprefix("note: "))
    return problems, notes


def _judge(table: str, version: int, commit: delta_meta.Commit, claims: dict[tuple[str, int], tuple[str, str]],
           known: dict[str, str], open_runs: set[str], audited: bool) -> str | None:
    meta = commit.user_metadata
    operation = str(commit.info.get("operation", "?"))
    claim = claims.get((table, version))
    named = commit.run_id
    if meta.get("tracelake_rollback_of"):
        target = str(meta["tracelake_rollback_of"])
        if claim == (target, "rollback") or known.get(target) in ("failed", "abandoned") or target in open_runs:
            return None
        return f"{table}@v{version}: a rollback of run {target}, which is not a failed run"
    if named is None:
        if claim is not None:
            return None  # an external run (OpenLineage) recorded this commit
        if operation.upper() in _HOUSEKEEPING:
            return f"note: {table}@v{version}: {operation} (maintenance, no rows changed by a run)"
        return f"{table}@v{version}: a {operation} commit that no recorded run made"
    if named.startswith("plain-"):
        if audited:
            return f"{table}@v{version}: a {operation} commit claiming an unaudited writer ({named}) in an audited table"
        return None
    if claim is not None and claim[0] == named:
        return None
    if named in open_runs:
        return None  # a run still in progress (or killed before reconciliation): its record will follow
    if named not in known:
        return f"{table}@v{version}: commit names run {named}, which has no record"
    if claim is not None:
        return f"{table}@v{version}: commit names run {named}, but the record gives this version to run {claim[0]}"
    return f"{table}@v{version}: commit names run {named}, whose record claims a different version (a forged commit)"


def digest_problems(lake: Lakehouse, runs: pd.DataFrame) -> tuple[list[str], int]:
    """(problems, versions checked): every recorded output's files hashed again against the
    digest taken at write time."""
    problems: list[str] = []
    checked = 0
    for rec in runs.to_dict("records"):
        digest, version = rec.get("content_digest"), rec.get("output_version")
        if not digest or version is None or version != version:
            continue
        path = lake.layout.resolve(rec.get("output_table"), rec.get("output_path"))
        label = f"{rec['output_table']}@v{int(version)}"
        try:
            commit = delta_meta.read_commit(path, int(version))
            now = delta_meta.files_digest(path, commit)
        except delta_meta.CommitMissing:
            continue  # said by the commit check
        except FileNotFoundError as exc:
            problems.append(f"{label} (run {rec['run_id']}): a data file is missing: {_file_of(exc)}")
            continue
        checked += 1
        if now != digest:
            problems.append(f"{label} (run {rec['run_id']}): its data files changed after they were written "
                            "(digest differs from the one recorded)")
    return problems, checked


def _file_of(exc: BaseException) -> Any:
    return getattr(exc, "filename", None) or str(exc).splitlines()[0][:200]
