"""Outputs marked wrong by a person, and the review that says where to look first.

``flag`` records a slice (table, predicate, the version it was judged at, the runs that wrote
it) in the chained ``flags`` table. ``review`` traces every active flag and, like mltrace's
review, ranks the component runs by how often they appear in the flagged traces - but also by
how *rarely* they appear in the traces of unflagged outputs of the same period, so runs shared
by everything (the model, last month's data) do not crowd the top. Ties are broken by the
evidence a person would look at next: failed declared tests, and code or config that changed
since the component's previous run.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow.compute as pc

from tracelake.lineage.record.audit_tables import CHECK_RESULTS, FLAGS
from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.layout import PARTITION_COLUMN
from tracelake.lineage.record.runid import new_run_id
from tracelake.lineage.query.slices import SliceError, _quote
from tracelake.lineage.query.trace import LineageWalker, TraceResult, trace

__all__ = ["flag", "unflag", "active_flags", "review", "ReviewEntry", "upstream_checks", "changed_since_previous"]


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
        "flagged_by": by or getpass.getuser(), "flagged_at": datetime.now(timezone.utc),
    }
    return lake.journal.append(FLAGS, record["flag_id"], record)


def unflag(lake: Lakehouse, flag_id: str, reason: str = "", *, by: str | None = None) -> dict[str, Any]:
    if flag_id not in {f["flag_id"] for f in active_flags(lake)}:
        raise SliceError(f"no active flag {flag_id}; list them with `tracelake flags`")
    record = {"flag_id": new_run_id(), "action": "unflag", "target_flag_id": flag_id, "reason": reason,
              "flagged_by": by or getpass.getuser(), "flagged_at": datetime.now(timezone.utc)}
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


@dataclass
class ReviewEntry:
    run_id: str
    component: str | None
    partition_key: str | None
    score: float
    in_flagged: int
    in_unflagged: int
    flagged_traces: int
    unflagged_traces: int
    failed_checks: list[dict[str, Any]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    depth: int = 0

    @property
    def why(self) -> str:
        parts = [f"in {self.in_flagged}/{self.flagged_traces} flagged traces, "
                 f"{self.in_unflagged}/{self.unflagged_traces} unflagged"]
        if self.failed_checks:
            parts.append("failed: " + ", ".join(c["check"] for c in self.failed_checks))
        if self.changed:
            parts.append("changed since previous run: " + ", ".join(self.changed))
        return "; ".join(parts)


def _comparison_predicate(walker: LineageWalker, flagged: dict[str, Any], window: int) -> str | None:
    """Unflagged outputs of the same period: rows of the same table version written by *other*
    runs, in the partitions around the flagged writers' partitions (``window`` each side).

    Other runs, not merely other rows: the unflagged rows of a flagged run share its whole
    lineage, and counting them as "good" would clear the very run that is wrong."""
    index = walker.index
    parts = sorted({index.runs.at[r, "partition_key"] for r in flagged["writer_run_ids"] if index.has(r)} - {None})
    writers = ", ".join("'" + r.replace("'", "''") + "'" for r in flagged["writer_run_ids"])
    base = f"{_quote('_tl_run_id')} NOT IN ({writers})"
    if not parts:
        return base
    rec = index.record(flagged["writer_run_ids"][0])
    siblings = sorted({p for p in index.runs.loc[index.runs["output_table"] == rec["output_table"], "partition_key"]
                       if p is not None})
    lo, hi = siblings.index(parts[0]), siblings.index(parts[-1])
    period = siblings[max(0, lo - window): hi + window + 1]
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in period)
    return f"{base} AND {_quote(PARTITION_COLUMN)} IN ({quoted})"


def changed_since_previous(walker: LineageWalker, run_id: str) -> list[str]:
    """What differs from the previous run of the same component: code, git commit, config."""
    runs = walker.index.runs
    r = runs.loc[run_id]
    earlier = runs[(runs["component"] == r["component"]) & (runs["run_id"] < run_id)
                   & runs["status"].isin(["succeeded", "failed"])]
    if earlier.empty:
        return []
    prev = earlier.sort_index().iloc[-1]
    changed = []
    if prev["source_hash"] != r["source_hash"]:
        changed.append("code")
    if prev["git_commit"] != r["git_commit"]:
        changed.append("git commit")
    cfg = walker.index.record(run_id).get("config_json")
    if walker.index.record(prev["run_id"]).get("config_json") != cfg:
        changed.append("config")
    return changed


def review(lake: Lakehouse, *, since: datetime | None = None, until: datetime | None = None,
           table: str | None = None, window: int = 3, walker: LineageWalker | None = None) -> list[ReviewEntry]:
    """Rank the runs behind the active flags; the first entry is the first place to look."""
    walker = walker or LineageWalker(lake)
    flags = active_flags(lake, since=since, until=until, table=table)
    if not flags:
        return []
    flagged_sets: list[set[str]] = []
    unflagged_sets: list[set[str]] = []
    depth: dict[str, int] = {}
    for f in flags:
        result: TraceResult = trace(lake, f["table_name"], f["predicate"], as_of=f["table_version"], walker=walker)
        runs = {n.id for n in result.runs()}
        flagged_sets.append(runs)
        for n in result.runs():
            depth[n.id] = max(depth.get(n.id, 0), n.depth)
        comparison = _comparison_predicate(walker, f, window)
        if comparison is not None:
            other = trace(lake, f["table_name"], comparison, as_of=f["table_version"], walker=walker)
            if other.rows:
                unflagged_sets.append({n.id for n in other.runs()})
    candidates = set().union(*flagged_sets)
    entries = []
    for run_id in candidates:
        inf = sum(run_id in s for s in flagged_sets)
        inu = sum(run_id in s for s in unflagged_sets)
        score = inf / len(flagged_sets) - (inu / len(unflagged_sets) if unflagged_sets else 0.0)
        node = walker.node_for_run(run_id, depth.get(run_id, 0))
        entries.append(ReviewEntry(run_id, node.component, node.partition_key, round(score, 4), inf, inu,
                                   len(flagged_sets), len(unflagged_sets), node.checks,
                                   changed_since_previous(walker, run_id) if walker.index.has(run_id) else [],
                                   depth.get(run_id, 0)))
    entries.sort(key=lambda e: (-e.score, -sum(c["severity"] == "error" for c in e.failed_checks),
                                -len(e.failed_checks), -len(e.changed), -e.in_flagged, -e.depth, e.run_id))
    return entries


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
