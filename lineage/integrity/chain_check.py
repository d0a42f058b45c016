"""Recompute the hash chain of one audit table, from the Delta rows and the journal's tail.

What it proves, per chain (one chain per journal): every record's hash matches its content, every
record links to the one before it, no position is missing in between, no two different records
hold one position, no key (run id, check id, ...) was recorded twice, and the newest position
equals the journal's head - so a record modified, removed, reordered, duplicated or cut off the
end is named. A record that is both flushed and still in the journal (a flush killed before it
trimmed the journal) is the *same* record, never a gap or a duplicate: a crash is not tampering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from tracelake.lineage.record.anchors import Anchor
from tracelake.lineage.record.audit_store import AuditStore
from tracelake.lineage.record.chain import chain_hash

__all__ = ["ChainReport", "chain_rows", "verify_chain"]


@dataclass
class ChainReport:
    table: str
    records: int = 0
    chains: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def chain_rows(store: AuditStore, table: str) -> list[dict[str, Any]]:
    """Every stored copy of every record of ``table``: the Delta rows and the journal's tail."""
    schema = store.schema_of(table)
    parts = [store.read_delta(table)]
    pending = [e.row for e in store.journal.pending(table)]
    if pending:
        parts.append(pa.Table.from_pylist(pending, schema=schema))
    return pa.concat_tables(parts).to_pylist() if len(parts) > 1 else parts[0].to_pylist()


def verify_chain(store: AuditStore, table: str, anchors: Sequence[Anchor] = ()) -> ChainReport:
    """Check every record of ``table`` (see the module docstring), and that the newest anchored
    head of each chain is still there with the same hash (``record.anchors``)."""
    report = ChainReport(table)
    key = store.schema_of(table).names[0]
    by_position: dict[tuple[str, int], dict[str, Any]] = {}
    flushed_copies: dict[tuple[str, int], int] = {}
    flushed = store.read_delta(table).to_pylist()
    for n, row in enumerate(flushed + [e.row for e in store.journal.pending(table)]):
        position = (row["journal_id"], row["chain_seq"])
        if n < len(flushed):
            flushed_copies[position] = flushed_copies.get(position, 0) + 1
        seen = by_position.get(position)
        if seen is None:
            by_position[position] = row
        elif seen["record_hash"] != row["record_hash"]:
            report.problems.append(f"{table}: two different records hold position {row['chain_seq']} of chain "
                                   f"{row['journal_id'][:8]} ({seen[key]} and {row[key]})")
    # A flush is idempotent (Delta app transactions), so a crash can leave a record flushed *and*
    # journaled, never flushed twice: two identical Delta rows are a copy someone added.
    for (journal_id, seq), copies in sorted(flushed_copies.items()):
        if copies > 1:
            report.problems.append(f"{table}: position {seq} of chain {journal_id[:8]} "
                                   f"({by_position[(journal_id, seq)][key]}) is stored {copies} times (a duplicated record)")
    report.records = len(by_position)
    chains: dict[str, list[dict[str, Any]]] = {}
    for (journal_id, _), row in sorted(by_position.items()):
        chains.setdefault(journal_id, []).append(row)
    report.chains = len(chains)
    for journal_id, chain in chains.items():
        _check_links(report, table, key, journal_id, chain)
        head = store.journal.chain_head(table) if journal_id == store.journal.journal_id else None
        if head is not None and chain[-1]["chain_seq"] != head[0]:
            report.problems.append(
                f"{table}: newest record is position {chain[-1]['chain_seq']} but the journal head is {head[0]} "
                "(records missing at the end)")
    own = store.journal.journal_id
    if own not in chains:
        head = store.journal.chain_head(table)
        if head is not None:
            report.problems.append(f"{table}: the journal's head is position {head[0]} but no record of its chain "
                                   "is left (records deleted)")
    _check_anchors(report, table, key, anchors, by_position, chains)
    seen_keys: dict[Any, int] = {}
    for row in by_position.values():
        seen_keys[row[key]] = seen_keys.get(row[key], 0) + 1
    for value, count in sorted(seen_keys.items(), key=lambda kv: str(kv[0])):
        if count > 1:
            report.problems.append(f"{table}: {key} {value} is recorded {count} times")
    return report


def _check_anchors(report: ChainReport, table: str, key: str, anchors: Sequence[Anchor],
                   by_position: dict[tuple[str, int], dict[str, Any]], chains: dict[str, list[dict[str, Any]]]) -> None:
    """Every anchored head must still be there with its hash - not only the newest: a chain
    recomputed after a change and then appended to normally has a valid newest head, but the
    heads anchored before the change no longer match. One problem per chain and kind, naming
    the earliest position, so a rewritten history reads as one finding, not thousands."""
    gone: dict[str, list[Anchor]] = {}
    rewritten: dict[str, list[tuple[Anchor, dict[str, Any]]]] = {}
    for anchor in sorted(anchors, key=lambda a: (a.journal_id, a.chain_seq)):
        row = by_position.get((anchor.journal_id, anchor.chain_seq))
        if row is None:
            gone.setdefault(anchor.journal_id, []).append(anchor)
        elif row["record_hash"] != anchor.record_hash:
            rewritten.setdefault(anchor.journal_id, []).append((anchor, row))
    for journal_id, lost in gone.items():
        more = f", and {len(lost) - 1} later anchored position(s)" if len(lost) > 1 else ""
        report.problems.append(
            f"{table}: anchored position {lost[0].chain_seq} of chain {journal_id[:8]} is gone{more} "
            f"(records deleted; {len(chains.get(journal_id, []))} remain in that chain)")
    for journal_id, changed in rewritten.items():
        (anchor, row), more = changed[0], f" (and {len(changed) - 1} later anchored record(s))" if len(changed) > 1 else ""
        report.problems.append(
            f"{table}: record {row[key]} at anchored position {anchor.chain_seq} of chain {journal_id[:8]} was rewritten "
            f"after it was anchored{more} (its hash differs: the chain was recomputed)")


def _check_links(report: ChainReport, table: str, key: str, journal_id: str, chain: list[dict[str, Any]]) -> None:
    prev_hash, expected = None, 0
    for row in chain:
        if row["chain_seq"] != expected:
            report.problems.append(
                f"{table}: chain {journal_id[:8]} is missing positions {expected}..{row['chain_seq'] - 1} "
                "(records deleted)")
        elif row["prev_hash"] != prev_hash:
            report.problems.append(f"{table}: record {row[key]} does not link to the record before it")
        if chain_hash(row["prev_hash"], row) != row["record_hash"]:
            report.problems.append(f"{table}: record {row[key]} was modified after it was written")
        prev_hash, expected = row["record_hash"], row["chain_seq"] + 1
