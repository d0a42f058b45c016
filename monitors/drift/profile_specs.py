"""The bins of a table's profiles, fixed once and kept: what makes windows comparable.

A table's :class:`ProfileSpec` is derived from its first reference and recorded in the chained
audit table ``profile_specs``. Every later profile of that table, and every reference profiled
to compare against it, uses the same bins, so a profile from January merges with one from June.
Changing the declared columns derives (and records) a new spec; profiles carry their
``spec_id`` so mixing specs is refused rather than silently wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tracelake.lineage import Lakehouse
from tracelake.monitors.audit_tables import PROFILE_SPECS
from tracelake.monitors.drift.profiles import ProfileSpec

__all__ = ["PROFILE_SPECS", "load_spec", "record_spec", "spec_for"]



def _columns_key(spec_columns) -> str:
    return ",".join(sorted(spec_columns))


def load_spec(lake: Lakehouse, table: str, columns: list[str]) -> ProfileSpec | None:
    """The first spec recorded for ``table`` over exactly these columns (first wins, so two
    racing derivations still converge on one set of bins)."""
    frame = lake.store.read(PROFILE_SPECS)
    if frame.empty:
        return None
    hit = frame[(frame["table_name"] == table) & (frame["columns"] == _columns_key(columns))]
    return None if hit.empty else ProfileSpec.from_json(hit.iloc[0]["spec_json"])


def record_spec(lake: Lakehouse, table: str, spec: ProfileSpec, derived_from: str) -> None:
    lake.store.append_record(PROFILE_SPECS, table, {
        "spec_id": spec.spec_id, "table_name": table, "columns": _columns_key(c.name for c in spec.columns),
        "spec_json": spec.to_json(), "derived_from": derived_from, "created_at": datetime.now(UTC),
    })


def spec_for(lake: Lakehouse, table: str, columns: list[str], derive: Callable[[], tuple[ProfileSpec, str]]) -> ProfileSpec:
    """The recorded spec, or one derived now (``derive`` returns it and where it came from)."""
    spec = load_spec(lake, table, columns)
    if spec is None:
        spec, source = derive()
        record_spec(lake, table, spec, source)
        spec = load_spec(lake, table, columns) or spec
    return spec
