"""Run-level upstream closure: every run whose output a set of runs read, transitively.

Answered from the records alone (no data is read): each input a run recorded - a table at the
exact Delta version, for the partitions it read - leads to the runs whose rows were live in that
table version for those partitions (``AuditIndex.live_writers``); a model a run loaded leads to
the run that registered that version. That is what a model report needs: what the model learned
from, and what fed the predictions it served, down to the sources.

One rule keeps a consumer from inheriting other models' histories: a run that recorded loading
model *M vN* is not led, through a table it also read, to the runs that registered other
versions of *M* (an inference run reads the model registry table to find the newest model, but
it scored with the version it recorded - the one it loaded). Those hops are kept as
``skipped`` with the reason, not silently dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tracelake.lineage.query.graph import AuditIndex

__all__ = ["Closure", "registered_by", "upstream_closure"]


@dataclass
class Closure:
    depth: dict[str, int] = field(default_factory=dict)                # run id -> hops from a start run
    edges: list[dict[str, Any]] = field(default_factory=list)          # consumer -> producer, through what
    skipped: list[dict[str, Any]] = field(default_factory=list)        # hops not followed, and why
    unrecorded: set[str] = field(default_factory=set)                  # writers without a record

    @property
    def runs(self) -> set[str]:
        return set(self.depth)

    def producers_of(self, run_id: str) -> list[dict[str, Any]]:
        return [e for e in self.edges if e["child"] == run_id]


def registered_by(index: AuditIndex) -> dict[str, list[tuple[str, str]]]:
    """run id -> [(model name, version)] it registered."""
    models = index.models
    out: dict[str, list[tuple[str, str]]] = {}
    if models.empty:
        return out
    for run_id, name, version in models.loc[models["role"] == "registered", ["run_id", "name", "version"]].itertuples(
            index=False):
        out.setdefault(run_id, []).append((name, str(version)))
    return out


def upstream_closure(index: AuditIndex, starts: Iterable[str], *, follow_models: bool = True,
                     max_runs: int = 200_000) -> Closure:
    """Every run upstream of ``starts`` (the starts included, at depth 0)."""
    closure = Closure()
    registrars = registered_by(index)
    queue: deque[str] = deque()
    for run_id in starts:
        if run_id not in closure.depth:
            closure.depth[run_id] = 0
            queue.append(run_id)
    while queue and len(closure.depth) < max_runs:
        run_id = queue.popleft()
        if not index.has(run_id):
            closure.unrecorded.add(run_id)
            continue
        rec = index.record(run_id)
        depth = closure.depth[run_id]
        loaded = {(i["name"], str(i.get("model_version"))) for i in rec["inputs"] if i.get("kind") == "model"}
        loaded_names = {name for name, _ in loaded}
        for inp in rec["inputs"]:
            if inp.get("kind") == "model":
                registrar = index.model_registrar(inp["name"], inp.get("model_version"))
                label = f"{inp['name']} v{inp.get('model_version')}"
                if registrar is None:
                    closure.skipped.append({"child": run_id, "input": label,
                                            "reason": "no recorded run registered this model version"})
                    continue
                closure.edges.append({"child": run_id, "parent": registrar, "via": "model", "input": label,
                                      "table": None, "version": None, "partitions": None})
                if follow_models:
                    _reach(closure, queue, registrar, depth + 1)
                continue
            version = inp.get("version")
            if inp.get("kind") != "table" or version is None:
                # An external run's input the Delta log did not confirm (kind "unverified") is
                # shown as not followed, as trace does - never trusted into a model's evidence.
                if inp.get("kind") != "table":
                    why = dict(rec.get("tags") or []).get(f"tracelake.external.input.{inp['name']}")
                    closure.skipped.append({"child": run_id, "input": _label(inp),
                                            "reason": why or f"an input of kind {inp.get('kind')!r} is not followed"})
                continue
            partitions = inp.get("partitions")
            read = list(partitions) if partitions is not None else None
            writers = index.live_writers(inp["name"], int(version), read)
            label = f"{inp['name']}@v{int(version)}"
            for writer in writers:
                other = [m for m in registrars.get(writer, []) if m[0] in loaded_names and m not in loaded]
                if other:
                    closure.skipped.append({
                        "child": run_id, "parent": writer, "input": label,
                        "reason": f"registered {', '.join(f'{n} v{v}' for n, v in other)}, not the version "
                                  f"this run loaded ({', '.join(f'{n} v{v}' for n, v in sorted(loaded))})"})
                    continue
                closure.edges.append({"child": run_id, "parent": writer, "via": "table", "input": label,
                                      "table": inp["name"], "version": int(version),
                                      "partitions": list(partitions) if partitions is not None else None})
                _reach(closure, queue, writer, depth + 1)
    return closure


def _label(inp: dict[str, Any]) -> str:
    version = inp.get("version")
    return f"{inp['name']}@v{version}" if version is not None else str(inp["name"])


def _reach(closure: Closure, queue: deque[str], run_id: str, depth: int) -> None:
    if run_id not in closure.depth:
        closure.depth[run_id] = depth
        queue.append(run_id)
    elif depth < closure.depth[run_id]:
        closure.depth[run_id] = depth
