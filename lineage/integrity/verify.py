"""Invariant checks over what was recorded (``tracelake audit verify``).

- the audit chain of every table is intact (no record modified, removed or reordered);
- every succeeded run's output version exists, and that commit names the run;
- no two succeeded runs claim the same commit;
- no rows of a failed or abandoned run are left in the newest version of its output or quarantine
  table;
- every commit of every data table was made by a recorded run (``commit_check``), and no data
  file of a recorded version changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc
from deltalake import DeltaTable

from tracelake.lineage.integrity.chain_check import verify_chain
from tracelake.lineage.integrity.commit_check import commit_problems, digest_problems
from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.layout import RUN_ID_COLUMN
from tracelake.lineage.query.sql import data_tables
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.anchors import anchor_store
from tracelake.lineage.record.audit_store import UnknownAuditTable

__all__ = ["VerifyReport", "verify_lakehouse"]


@dataclass
class VerifyReport:
    checked_runs: int = 0
    checked_records: int = 0
    tables: dict[str, int] = field(default_factory=dict)   # chained table -> records verified
    problems: list[str] = field(default_factory=list)
    external_runs: int = 0                                  # runs received over OpenLineage
    notes: list[str] = field(default_factory=list)          # facts worth saying that are not problems
    checked_versions: int = 0                               # data versions re-hashed against their digest

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_lakehouse(lake: Lakehouse, *, deep: bool = True) -> VerifyReport:
    """Everything the record claims, checked against everything it can be checked against.

    ``deep`` also re-hashes the data files of every recorded version (the costliest part)."""
    report = VerifyReport()
    _verify_chains(lake, report)
    runs = lake.store.component_runs(include_open=False)
    claimed: dict[tuple[str, int], str] = {}
    for rec in runs.to_dict("records"):
        if rec["status"] != "succeeded":
            continue
        _verify_output(lake, rec, report, claimed)
    ours = runs[~runs["component"].astype(str).str.startswith("external:")] if not runs.empty else runs
    report.problems += _failed_rows_still_visible(lake, ours)
    open_ids = {r.run_id for r in lake.journal.open_runs()}
    problems, notes = commit_problems(lake, runs, data_tables(lake), open_ids)
    report.problems += problems
    report.notes += notes
    if deep:
        problems, report.checked_versions = digest_problems(lake, runs)
        report.problems += problems
    return report


def _verify_chains(lake: Lakehouse, report: VerifyReport) -> None:
    """Every chained table, and every table an anchor names, against its chain and anchors."""
    anchors = anchor_store(lake.settings.home, lake.settings.anchor_dir)
    every = list(anchors.anchors())
    forged = sum(not a.valid for a in every)
    if forged:
        report.problems.append(f"{forged} anchor line(s) fail their signature: the anchor file was edited")
    valid = [a for a in every if a.valid]
    tables = sorted(set(lake.store.tables()) | {a.table for a in valid})
    if not valid and tables:
        report.notes.append(f"no chain heads are anchored for {lake.settings.home} in {anchors.directory}: a chain "
                            "recomputed or cut short would not be seen; run `tracelake audit anchor` on the machine "
                            "that holds the anchor key (docs/security.md)")
    for table in tables:
        anchored = [a for a in valid if a.table == table]
        try:
            chain = verify_chain(lake.store, table, anchored)
        except UnknownAuditTable:
            newest = max(anchored, key=lambda a: a.at)
            report.problems.append(
                f"{table}: anchored ({len(anchored)} chain(s), newest at position {newest.chain_seq}) but the lakehouse "
                f"has no such table: it was removed (if this lakehouse was deliberately deleted and recreated at the "
                f"same path, move its old anchors {anchors.path} aside)")
            continue
        report.tables[table] = chain.records
        report.checked_records += chain.records
        report.problems += chain.problems


def _is_external(rec: dict[str, Any]) -> bool:
    return (rec.get("tags") or {}).get("tracelake.external") == "true"


def _recorded_output(lake: Lakehouse, rec: dict[str, Any]) -> tuple[str, int] | None:
    """The table path and version a run's record claims (None: it claims none)."""
    path = lake.layout.resolve(rec.get("output_table"), rec.get("output_path"))
    version = rec.get("output_version")
    if path is None or version is None or version != version:  # NaN: no version
        return None
    return path, int(version)


def _verify_output(lake: Lakehouse, rec: dict[str, Any], report: VerifyReport,
                   claimed: dict[tuple[str, int], str]) -> None:
    """A succeeded run's output: the version it records is in the table's log, that commit was
    made by the run (:func:`_own_commit_problems`, :func:`_external_commit_problems`), and no
    other run claims it.

    A run received over OpenLineage (``lineage.openlineage.external``) recorded without an
    output version (its commit was ambiguous or never landed) is a note, not a problem: its
    record already says it is unverified."""
    external = _is_external(rec)
    who = "external run" if external else "run"
    if external:
        report.external_runs += 1
    else:
        report.checked_runs += 1
    output = _recorded_output(lake, rec)
    if output is None:
        if external:
            why = (rec.get("tags") or {}).get("tracelake.external.output", "no output version")
            report.notes.append(f"external run {rec['run_id']} ({rec['component']}): {rec.get('output_table')} - {why}")
        else:
            report.problems.append(f"run {rec['run_id']} ({rec['component']}) succeeded without an output version")
        return
    path, version = output
    try:
        commit = delta_meta.read_commit(path, version)
    except FileNotFoundError:
        report.problems.append(f"{who} {rec['run_id']}: {rec['output_table']}@v{version} is not in the table's log")
        return
    report.problems += (_external_commit_problems if external else _own_commit_problems)(rec, version, commit)
    other = claimed.setdefault((path, version), rec["run_id"])
    if other != rec["run_id"]:
        report.problems.append(f"runs {other} and {rec['run_id']} both claim {rec['output_table']}@v{version}")


def _own_commit_problems(rec: dict[str, Any], version: int, commit: delta_meta.Commit) -> list[str]:
    """A Tracelake run's commit names the run and added the rows its record says."""
    named = commit.user_metadata.get("tracelake_run_id")
    if named != rec["run_id"]:
        return [f"run {rec['run_id']}: {rec['output_table']}@v{version} was committed by {named!r}, not by this run"]
    if commit.rows_added is not None and rec.get("output_rows") is not None and commit.rows_added != rec["output_rows"]:
        return [f"run {rec['run_id']}: {rec['output_table']}@v{version} added {commit.rows_added} "
                f"rows; the record says {rec['output_rows']}"]
    return []


def _external_commit_problems(rec: dict[str, Any], version: int, commit: delta_meta.Commit) -> list[str]:
    """An external run's commit names no Tracelake run: it is checked the other way round."""
    named = commit.user_metadata.get("tracelake_run_id")
    if named:
        return [f"external run {rec['run_id']}: {rec['output_table']}@v{version} was committed by "
                f"Tracelake run {named!r}, not by the external job"]
    return []


def _failed_rows_still_visible(lake: Lakehouse, runs: Any) -> list[str]:
    """Rows a failed or abandoned run committed - its output, or the quarantine written just
    before it - must not be in the newest table version (they are rolled back); rows of such a run
    still there are data no succeeded run produced. (A batch a blocking test refused stays in
    ``__rejected`` by design: that table holds only such rows.)"""
    if runs.empty:
        return []
    ended = runs[runs["status"].isin(["failed", "abandoned"])]
    problems = []
    for table_field, version_field in (("output_table", "output_version"), ("quarantine_table", "quarantine_version")):
        landed = ended[ended[version_field].notna()]
        for table, group in landed.groupby(table_field):
            visible = _rows_by_run(lake.layout.table(str(table)))
            for rec in group.to_dict("records"):
                if visible.get(rec["run_id"]):
                    problems.append(f"{table}: {visible[rec['run_id']]} rows of {rec['status']} run {rec['run_id']} "
                                    f"({rec['component']} {rec.get('partition_key') or ''}) are still visible; roll "
                                    "them back with `tracelake audit reconcile` or re-run that partition")
    return problems


def _rows_by_run(path: str) -> dict[str, int]:
    """Rows per run id in the newest version of the table at ``path`` (none: no such table)."""
    if not delta_meta.table_exists(path):
        return {}
    table = DeltaTable(path)
    if RUN_ID_COLUMN not in {f.name for f in table.schema().fields}:
        return {}
    data = table.to_pyarrow_table(columns=[RUN_ID_COLUMN]).column(RUN_ID_COLUMN)
    return {c["values"]: c["counts"] for c in pc.value_counts(data).to_pylist()}
