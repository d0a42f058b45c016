"""Anchoring the current chain heads on demand (``tracelake audit anchor``).

Every journal transaction anchors its new head as it commits (``record.anchors``). This anchors
the heads as they are *now*, for a lakehouse that has none under its current root: one restored
from a backup or moved to a new root, whose anchors were taken under the old one. Run it right
after the move, once ``tracelake audit verify`` says OK: from then on, anything removed or
rewritten is measured against these heads.
"""

from __future__ import annotations

from tracelake.lineage.integrity.chain_check import chain_rows
from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.record.anchors import anchor_store

__all__ = ["anchor_current_heads"]


def anchor_current_heads(lake: Lakehouse) -> dict[str, int]:
    """Anchor the newest record of every chain of every audit table; returns table -> heads anchored."""
    store = anchor_store(lake.settings.home, lake.settings.anchor_dir)
    done: dict[str, int] = {}
    for table in lake.store.tables():
        newest: dict[str, tuple[int, str]] = {}
        for row in chain_rows(lake.store, table):
            head = newest.get(row["journal_id"])
            if head is None or row["chain_seq"] > head[0]:
                newest[row["journal_id"]] = (row["chain_seq"], row["record_hash"])
        for journal_id, (seq, record_hash) in newest.items():
            store.note(table, journal_id, seq, record_hash)
        done[table] = len(newest)
    return done
