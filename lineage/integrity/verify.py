"""Invariant checks over what was recorded (``tracelake audit verify``).

- the audit chain of every table is intact (no record modified, removed or reordered);
- every succeeded run's output version exists, and that commit names the run;
- no two succeeded runs claim the same commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracelake.lineage.integrity.chain_check import verify_chain
from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.record import delta_meta

__all__ = ["verify_lakehouse", "VerifyReport"]


@dataclass
class VerifyReport:
    checked_runs: int = 0
    checked_records: int = 0
    tables: dict[str, int] = field(default_factory=dict)   # chained table -> records verified
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_lakehouse(lake: Lakehouse) -> VerifyReport:
    report = VerifyReport()
    for table in lake.store.tables():
        chain = verify_chain(lake.store, table)
        report.tables[table] = chain.records
        report.checked_records += chain.records
        report.problems += chain.problems
    runs = lake.store.component_runs(include_open=False)
    claimed: dict[tuple[str, int], str] = {}
    for rec in runs.to_dict("records"):
        if rec["status"] != "succeeded":
            continue
        report.checked_runs += 1
        path = lake.layout.resolve(rec.get("output_table"), rec.get("output_path"))
        version = rec.get("output_version")
        if path is None or version is None or version != version:
            report.problems.append(f"run {rec['run_id']} ({rec['component']}) succeeded without an output version")
            continue
        version = int(version)
        try:
            commit = delta_meta.read_commit(path, version)
        except FileNotFoundError:
            report.problems.append(f"run {rec['run_id']}: {rec['output_table']}@v{version} is not in the table's log")
            continue
        named = commit.user_metadata.get("tracelake_run_id")
        if named != rec["run_id"]:
            report.problems.append(
                f"run {rec['run_id']}: {rec['output_table']}@v{version} was committed by {named!r}, not by this run")
        other = claimed.setdefault((path, version), rec["run_id"])
        if other != rec["run_id"]:
            report.problems.append(f"runs {other} and {rec['run_id']} both claim {rec['output_table']}@v{version}")
    return report
