"""What one walk through the lineage graph has reached, and how.

Trace walks backward and impact forward, but both keep the same state and reach a run the same
way; only the order in which reached runs are expanded differs (``queue_order``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import pyarrow as pa

from tracelake.lineage.query.walker import KeyMatch, LineageWalker, TraceEdge, TraceNode

__all__ = ["WalkState"]


@dataclass
class WalkState:
    """The nodes and edges found so far, the rows that reached each run, and the runs still to expand."""

    walker: LineageWalker
    nodes: dict[str, TraceNode] = field(default_factory=dict)
    edges: list[TraceEdge] = field(default_factory=list)
    reached_rows: dict[str, list[pa.Table]] = field(default_factory=dict)   # run -> its rows in the answer
    keys_followed: dict[tuple[str, str], set[str]] = field(default_factory=dict)   # (run, next hop) -> keys sent
    hops_followed: set[tuple[str, str]] = field(default_factory=set)       # run-level and model hops done
    whole_output: set[str] = field(default_factory=set)                    # runs reached at run level
    matches: dict[str, list[KeyMatch]] = field(default_factory=dict)        # run -> key matches into it
    queue: list[tuple[str, str]] = field(default_factory=list)             # heap of (queue_order, run id)

    def reach(self, run_id: str, depth: int, rows: pa.Table | None) -> None:
        """The walk got to ``run_id`` at ``depth`` (the shallowest depth stands) with these of its
        rows (None: at run level); it is queued to be expanded unless ``queue_order`` says never."""
        node = self.nodes.get(run_id)
        if node is None:
            node = self.nodes[run_id] = self.walker.node_for_run(run_id, depth)
        node.depth = min(node.depth, depth)
        if rows is not None:
            self.reached_rows.setdefault(run_id, []).append(rows)
        order = self.queue_order(run_id, node)
        if order is not None:
            heapq.heappush(self.queue, (order, run_id))

    def queue_order(self, run_id: str, node: TraceNode) -> str | None:
        """The key the queue pops smallest first; None: the node is not expanded."""
        raise NotImplementedError
