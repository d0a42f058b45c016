"""What a window is compared against.

* ``lineage`` (default for a model's inputs and outputs): the audit records lead from the runs
  that wrote the current window's predictions to the model version they loaded, to the run that
  registered it, to the training data it read at the exact version. A retrain changes the
  reference by itself; a reference never drifts under you because it is pinned to a version.
  For the predictions themselves the reference is the model's first scored day (its deployment
  baseline), found the same way.
* ``fixed:START..END``: a baseline window of the same table (days, inclusive).
* ``previous``: the window just before the current one, of the same length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from tracelake.lineage import Lakehouse
from tracelake.lineage.record.delta_meta import latest_version

if TYPE_CHECKING:
    from tracelake.lineage.query.graph import AuditIndex

__all__ = ["Reference", "ReferenceNotFound", "days_between", "model_behind", "resolve_reference"]


class ReferenceNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Reference:
    kind: str                       # lineage | fixed | previous
    table: str
    version: int | None             # None: the newest version when read
    partitions: tuple[str, ...] | None
    description: str
    model: str | None = None        # "name vN" when chosen through a model

    def as_dict(self) -> dict:
        return {"kind": self.kind, "table": self.table, "version": self.version,
                "partitions": list(self.partitions or []), "description": self.description, "model": self.model}


def days_between(start: str, end: str) -> list[str]:
    a, b = date.fromisoformat(start), date.fromisoformat(end)
    if b < a:
        raise ValueError(f"window end {end} is before its start {start}")
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def model_behind(lake: Lakehouse, index: AuditIndex, predictions_table: str, partitions: list[str]) -> tuple[str, str, str]:
    """(model name, version, registering run id) that wrote most of these prediction partitions."""
    path = lake.layout.table(predictions_table)
    latest = latest_version(path)
    if latest is None:
        raise ReferenceNotFound(f"{predictions_table} does not exist yet, so no model is known for {partitions}")
    writers = index.live_writers(predictions_table, latest, partitions)
    models: dict[tuple[str, str], int] = {}
    for run_id in writers:
        for item in index.record(run_id)["inputs"]:
            if item.get("kind") == "model":
                key = (item["name"], str(item["model_version"]))
                models[key] = models.get(key, 0) + 1
    if not models:
        raise ReferenceNotFound(
            f"no recorded model behind {predictions_table} {', '.join(partitions)}; "
            "score those days first, or pass --reference previous / fixed:START..END")
    (name, version), _ = max(models.items(), key=lambda kv: (kv[1], int(kv[0][1]) if kv[0][1].isdigit() else 0))
    registrar = index.model_registrar(name, version)
    if registrar is None:
        raise ReferenceNotFound(f"model {name} v{version} was not registered by a recorded run; "
                                "its training data is unknown (use --reference fixed:START..END)")
    return name, version, registrar


def _lineage_reference(lake: Lakehouse, index: AuditIndex, table: str, partitions: list[str],
                       predictions_table: str, training_table: str) -> Reference:
    name, version, registrar = model_behind(lake, index, predictions_table, partitions)
    if table == predictions_table:
        # The model's deployment baseline: its first scored partition, at the version written.
        first = None
        for run_id in index.model_consumers(name, version):
            rec = index.record(run_id)
            if rec["component"] == predictions_table and rec["output_version"] is not None and rec["status"] == "succeeded":
                if first is None or rec["started_at"] < first["started_at"]:
                    first = rec
        if first is None:
            raise ReferenceNotFound(f"no succeeded {predictions_table} run of {name} v{version}")
        parts = tuple(first["output_partitions"])
        return Reference("lineage", table, int(first["output_version"]), parts,
                         f"{table}@v{first['output_version']} {','.join(parts)} (first day of {name} v{version})",
                         f"{name} v{version}")
    for item in index.record(registrar)["inputs"]:
        if item.get("kind") == "table" and item["name"] == training_table:
            read: tuple[str, ...] | None = tuple(item.get("partitions") or ()) or None
            where = f" {','.join(read)}" if read else ""
            return Reference("lineage", training_table, int(item["version"]), read,
                             f"{training_table}@v{item['version']}{where} (trained {name} v{version}, run {registrar})",
                             f"{name} v{version}")
    raise ReferenceNotFound(f"the run that registered {name} v{version} ({registrar}) read no {training_table}")


def resolve_reference(lake: Lakehouse, index: AuditIndex, table: str, window_days: list[str], spec: str = "lineage",
                      *, predictions_table: str = "tip_predictions", training_table: str = "training_set") -> Reference:
    """The reference for ``table`` over ``window_days`` (see the module docstring for ``spec``)."""
    if spec == "lineage":
        return _lineage_reference(lake, index, table, window_days, predictions_table, training_table)
    if spec == "previous":
        n = len(window_days)
        start = date.fromisoformat(window_days[0])
        days = [(start - timedelta(days=n - i)).isoformat() for i in range(n)]
        return Reference("previous", table, None, tuple(days), f"{table} {days[0]}..{days[-1]} (previous window)")
    if spec.startswith("fixed:") and ".." in spec:
        first, last = spec[len("fixed:"):].split("..", 1)
        days = days_between(first, last)
        return Reference("fixed", table, None, tuple(days), f"{table} {first}..{last} (fixed baseline)")
    raise ValueError(f"unknown reference {spec!r}: use lineage, previous, or fixed:YYYY-MM-DD..YYYY-MM-DD")
