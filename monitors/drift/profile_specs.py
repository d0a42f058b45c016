"""The bins of a table's profiles, fixed once and kept: what makes windows comparable.

A table's :class:`ProfileSpec` is derived from its first reference and recorded in the chained
audit table ``profile_specs``. Every later profile of that table, and every reference profiled
to compare against it, uses the same bins, so a profile from January merges with one from June.
Changing the declared columns derives (and records) a new spec; profiles carry their
``spec_id`` so mixing specs is refused rather than silently wrong.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

import pyarrow as pa

from tracelake.lineage import Lakehouse, register_audit_table
from tracelake.lineage.record.audit_tables import CHAIN_FIELDS

from tracelake.monitors.drift.profiles import ProfileSpec

__all__ = ["PROFILE_SPECS", "load_spec", "record_spec", "spec_for"]

PROFILE_SPECS = "profile_specs"
register_audit_table(PROFILE_SPECS, pa.schema([
    pa.field("spec_id", pa.string(), nullable=False),
    pa.field("table_name", pa.string()),
    pa.field("columns", pa.string()),        # comma-separated, to find the spec of a column set
    pa.field("spec_json", pa.string()),
    pa.field("derived_from", pa.string()),   # e.g. "training_set@v3 partitions 2026-W01,2026-W02"
    pa.field("created_at", pa.timestamp("us", tz="UTC")),
    *CHAIN_FIELDS,
]))


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
        "spec_json": spec.to_json(), "derived_from": derived_from, "created_at": datetime.now(timezone.utc),
    })


def spec_for(lake: Lakehouse, table: str, columns: list[str], derive: Callable[[], tuple[ProfileSpec, str]]) -> ProfileSpec:
    """The recorded spec, or one derived now (``derive`` returns it and where it came from)."""
    spec = load_spec(lake, table, columns)
    if spec is None:
        spec, source = derive()
        record_spec(lake, table, spec, source)
        spec = load_spec(lake, table, columns) or spec
    return spec
