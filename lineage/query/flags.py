"""Outputs marked wrong by a person.

``flag`` records a slice (table, predicate, the version it was judged at, the runs that wrote
it) in the chained ``flags`` table; ``unflag`` withdraws one (also a record, never a delete).
``review`` (lineage/query/review.py) ranks the runs behind the active flags, and
``upstream_checks`` lists the declared tests that failed or warned upstream of a slice.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

import pyarrow.compute as pc

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.query.slices import SliceError
from tracelake.lineage.query.trace import LineageWalker, trace
from tracelake.lineage.record.audit_tables import CHECK_RESULTS, FLAGS
from tracelake.lineage.record.runid import new_run_id

__all__ = ["active_flags", "flag", "unflag", "upstream_checks"]


def flag(lake: Lakehouse, table: str, where: str, reason: str, *, by: str | None = None,
         as_of: str | int | None = None, walker: LineageWalker | None = None) -> dict[str, Any]:
    if not reason or not reason.strip():
        raise SliceError("a flag needs a --reason (what is wrong with these rows)")
    walker = walker or LineageWalker(lake)
    from tracelake.lineage.query.slices import resolve_as_of

    at = walker.reader.table_at(table, resolve_as_of(as_of))
    rows = walker.reader.select(at, where, [])
    if rows.num_rows == 0:
        raise SliceError(f"no rows of {table}@v{at.version} match {where!r}; nothing to flag")
    writers = sorted(pc.unique(rows.column("_tl_run_id")).to_pylist())
    record = {
        "flag_id": new_run_id(), "action": "flag", "table_name": table, "predicate": where,
        "table_version": at.version, "rows": rows.num_rows, "writer_run_ids": writers, "reason": reason.strip(),
        "flagged_by": by or getpass.getuser(), "flagged_at": datetime.now(UTC),
    }
    return lake.journal.append(FLAGS, record["flag_id"], record)


def unflag(lake: Lakehouse, flag_id: str, reason: str = "", *, by: str | None = None) -> dict[str, Any]:
    if flag_id not in {f["flag_id"] for f in active_flags(lake)}:
        raise SliceError(f"no active flag {flag_id}; list them with `tracelake flags`")
    record = {"flag_id": new_run_id(), "action": "unflag", "target_flag_id": flag_id, "reason": reason,
              "flagged_by": by or getpass.getuser(), "flagged_at": datetime.now(UTC)}
    return lake.journal.append(FLAGS, record["flag_id"], record)


def active_flags(lake: Lakehouse, *, since: datetime | None = None, until: datetime | None = None,
                 table: str | None = None) -> list[dict[str, Any]]:
    frame = lake.store.read(FLAGS)
    if frame.empty:
        return []
    withdrawn = set(frame.loc[frame["action"] == "unflag", "target_flag_id"])
    out = []
    for rec in frame[frame["action"] == "flag"].to_dict("records"):
        if rec["flag_id"] in withdrawn or (table and rec["table_name"] != table):
            continue
        when = rec["flagged_at"]
        if (since and when < since) or (until and when >= until):
            continue
        rec["writer_run_ids"] = list(rec["writer_run_ids"] if rec["writer_run_ids"] is not None else [])
        out.append(rec)
    return out


def upstream_checks(lake: Lakehouse, table: str, where: str, *, since: datetime | None = None,
                    until: datetime | None = None, as_of: str | int | None = None,
                    walker: LineageWalker | None = None) -> list[dict[str, Any]]:
    """Declared tests that failed or warned anywhere upstream of a slice (optionally in a window)."""
    walker = walker or LineageWalker(lake)
    result = trace(lake, table, where, as_of=as_of, walker=walker)
    ids = {n.id for n in result.runs()}
    frame = walker.lake.store.read(CHECK_RESULTS)
    if frame.empty:
        return []
    hit = frame[frame["run_id"].isin(ids) & ~frame["passed"].astype(bool)]
    if since is not None:
        hit = hit[hit["evaluated_at"] >= since]
    if until is not None:
        hit = hit[hit["evaluated_at"] < until]
    out = []
    for rec in hit.sort_values("evaluated_at").to_dict("records"):
        node = result.nodes[rec["run_id"]]
        out.append({"run_id": rec["run_id"], "component": node.component, "partition_key": node.partition_key,
                    "depth": node.depth, "check": rec["check_name"], "severity": rec["severity"],
                    "observed": rec["observed_value"], "threshold": rec["threshold_text"],
                    "description": rec["description"], "evaluated_at": rec["evaluated_at"]})
    return out
