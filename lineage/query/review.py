"""``review``: where to look first, given outputs people flagged as wrong.

Like mltrace's review, the runs behind the active flags are ranked by how often they appear in
the flagged traces - and, unlike it, by how *rarely* they appear in the traces of unflagged
outputs of the same period, so runs shared by everything (the model, last month's data) do not
crowd the top. That specificity alone ties every run of one bad day (each is behind every
flagged row and no unflagged one), so the rest of the record breaks the tie:

- **evidence** on the run itself: failed or warned declared tests, drift or anomalies on its
  output (supplied by the monitors, see ``monitors.review``), code, git commit or config that
  changed since the component's previous run - each with a weight, each printed;
- **origin**: a run with evidence whose own inputs in the trace show none is where the fault
  entered; its descendants only inherited it (an ETL bug drifts the features computed from it).

Entries the evidence cannot separate are marked as tied, so nobody reads an arbitrary order as
a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.layout import PARTITION_COLUMN
from tracelake.lineage.query.slices import _quote
from tracelake.lineage.query.trace import LineageWalker, TraceNode, TraceResult, trace

__all__ = ["Evidence", "EvidenceSource", "ReviewEntry", "changed_since_previous", "lineage_evidence", "review"]

# How much each kind of evidence says about a run being the cause. A failed blocking-grade test
# is the strongest single signal; a config tweak the weakest (configs change for good reasons).
WEIGHTS = {"check_error": 3.0, "drift": 2.0, "anomaly": 2.0, "code": 2.0, "check_warn": 1.0, "git commit": 1.0,
           "config": 1.0}


@dataclass(frozen=True)
class Evidence:
    kind: str        # a key of WEIGHTS
    detail: str      # what a person reads: "fare_amount_range failed (0.97 > 0.01)"

    @property
    def weight(self) -> float:
        return WEIGHTS.get(self.kind, 1.0)


# (lake, walker, the candidate runs) -> evidence per run id
EvidenceSource = Callable[[Lakehouse, LineageWalker, Sequence[TraceNode]], dict[str, list[Evidence]]]


@dataclass
class ReviewEntry:
    run_id: str
    component: str | None
    partition_key: str | None
    score: float                  # share of flagged traces it is in, minus share of unflagged ones
    in_flagged: int
    in_unflagged: int
    flagged_traces: int
    unflagged_traces: int
    depth: int = 0
    evidence: list[Evidence] = field(default_factory=list)
    origin: bool = False          # has evidence, and none of its traced inputs has any
    rank: int = 0
    tied_with: list[int] = field(default_factory=list)   # ranks the evidence cannot separate it from

    @property
    def weight(self) -> float:
        return round(sum(e.weight for e in self.evidence), 2)

    @property
    def failed_checks(self) -> list[str]:
        return [e.detail for e in self.evidence if e.kind.startswith("check_")]

    @property
    def why(self) -> str:
        """The tie first, then the evidence, then the trace counts (which the score sums up): the
        CLI's table cuts long lines, and a tie is what must not be cut off."""
        parts = []
        if self.tied_with:
            ties = ("#" + ", #".join(map(str, self.tied_with)) if len(self.tied_with) <= 4
                    else f"{len(self.tied_with)} other runs (#{min(self.tied_with)}..#{max(self.tied_with)})")
            parts.append(f"tied with {ties}: the record cannot separate them")
        if self.evidence:
            parts.append(("where it starts: " if self.origin else "") + "; ".join(e.detail for e in self.evidence))
        else:
            parts.append("no evidence on the run itself")
        parts.append(f"in {self.in_flagged}/{self.flagged_traces} flagged traces, "
                     f"{self.in_unflagged}/{self.unflagged_traces} unflagged")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "run_id": self.run_id, "component": self.component,
                "partition_key": self.partition_key, "score": self.score, "in_flagged": self.in_flagged,
                "in_unflagged": self.in_unflagged, "flagged_traces": self.flagged_traces,
                "unflagged_traces": self.unflagged_traces, "depth": self.depth, "origin": self.origin,
                "weight": self.weight, "evidence": [{"kind": e.kind, "detail": e.detail, "weight": e.weight}
                                                    for e in self.evidence],
                "tied_with": self.tied_with, "why": self.why}


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


_FAIL_RATE = re.compile(r"fail rate <= ([0-9.eE+-]+)")


def _percent(rate: float) -> str:
    return f"{rate * 100:.3g}%"


def _observed(observed: Any, threshold: Any) -> str:
    """What a failed test saw, readable: a row rule's fail rate as the share of rows that failed
    and the share allowed ("100% of rows failed, at most 1% allowed"), not "observed 1"."""
    if not isinstance(observed, (int, float)) or isinstance(observed, bool) or observed != observed:
        return ""
    allowed = _FAIL_RATE.fullmatch(str(threshold or "").strip())
    # A quarantining uniqueness rule reports its duplicate count, not a rate, under the same
    # threshold text: a value above 1 can only be rows.
    if allowed and 0 <= observed <= 1:
        return f"{_percent(float(observed))} of rows failed, at most {_percent(float(allowed.group(1)))} allowed"
    if allowed:
        return f"{observed:.4g} rows failed, at most {_percent(float(allowed.group(1)))} allowed"
    return f"observed {observed:.4g}, threshold {threshold}" if threshold else f"observed {observed:.4g}"


def lineage_evidence(lake: Lakehouse, walker: LineageWalker, nodes: Sequence[TraceNode]) -> dict[str, list[Evidence]]:
    """What the audit record itself holds: declared tests that failed or warned, and changes."""
    out: dict[str, list[Evidence]] = {}
    for node in nodes:
        found = []
        for check in node.checks:
            kind = "check_error" if check.get("severity") == "error" else "check_warn"
            verdict = "failed" if kind == "check_error" else "warned"
            seen = _observed(check.get("observed"), check.get("threshold"))
            found.append(Evidence(kind, f"{check['check']} {verdict}" + (f" ({seen})" if seen else "")))
        if walker.index.has(node.id):
            found += [Evidence(c, f"{c} changed since the previous {node.component} run")
                      for c in changed_since_previous(walker, node.id)]
        out[node.id] = found
    return out


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


@dataclass
class _Traces:
    flagged: list[set[str]] = field(default_factory=list)
    unflagged: list[set[str]] = field(default_factory=list)
    nodes: dict[str, TraceNode] = field(default_factory=dict)
    inputs: dict[str, set[str]] = field(default_factory=dict)   # run -> the runs it read, within the traces

    def add(self, result: TraceResult, flagged: bool) -> None:
        runs = {n.id for n in result.runs()}
        (self.flagged if flagged else self.unflagged).append(runs)
        if not flagged:
            return
        for node in result.runs():
            known = self.nodes.setdefault(node.id, node)
            known.depth = max(known.depth, node.depth)
        for edge in result.edges:
            self.inputs.setdefault(edge.child, set()).add(edge.parent)


def _trace_flags(lake: Lakehouse, walker: LineageWalker, flags: list[dict[str, Any]], window: int) -> _Traces:
    traces = _Traces()
    for f in flags:
        traces.add(trace(lake, f["table_name"], f["predicate"], as_of=f["table_version"], walker=walker), True)
        comparison = _comparison_predicate(walker, f, window)
        if comparison is not None:
            other = trace(lake, f["table_name"], comparison, as_of=f["table_version"], walker=walker)
            if other.rows:
                traces.add(other, False)
    return traces


def _rank(entries: list[ReviewEntry]) -> list[ReviewEntry]:
    def key(e: ReviewEntry) -> tuple:
        return (-e.score, not e.origin, -e.weight)

    entries.sort(key=lambda e: (*key(e), -e.depth, e.run_id))
    for i, e in enumerate(entries):
        e.rank = i + 1
    for e in entries:
        e.tied_with = [o.rank for o in entries if o is not e and key(o) == key(e)]
    return entries


def review(lake: Lakehouse, *, since: datetime | None = None, until: datetime | None = None,
           table: str | None = None, window: int = 3, walker: LineageWalker | None = None,
           evidence: Sequence[EvidenceSource] = (lineage_evidence,)) -> list[ReviewEntry]:
    """Rank the runs behind the active flags; the first entry is the first place to look."""
    from tracelake.lineage.query.flags import active_flags

    walker = walker or LineageWalker(lake)
    flags = active_flags(lake, since=since, until=until, table=table)
    if not flags:
        return []
    traces = _trace_flags(lake, walker, flags, window)
    nodes = list(traces.nodes.values())
    found: dict[str, list[Evidence]] = {n.id: [] for n in nodes}
    for source in evidence:
        for run_id, items in source(lake, walker, nodes).items():
            found.setdefault(run_id, []).extend(items)
    entries = []
    n_flagged, n_unflagged = len(traces.flagged), len(traces.unflagged)
    for node in nodes:
        inf = sum(node.id in s for s in traces.flagged)
        inu = sum(node.id in s for s in traces.unflagged)
        score = inf / n_flagged - (inu / n_unflagged if n_unflagged else 0.0)
        items = found.get(node.id, [])
        inputs_clean = not any(found.get(parent) for parent in traces.inputs.get(node.id, ()))
        entries.append(ReviewEntry(node.id, node.component, node.partition_key, round(score, 4), inf, inu,
                                   n_flagged, n_unflagged, node.depth, items, bool(items) and inputs_clean))
    return _rank(entries)
