"""The canonical form of an audit record and the hash chain that signs it.

A record is hashed in the form any Delta reader returns it (coerced through the table's Arrow
schema, nulls dropped, keys sorted, times in UTC with microseconds), chained to the previous
record's hash. That is what lets ``tracelake audit verify`` recompute the same hash from the
Delta table years later, with any reader, and notice a record changed, removed or reordered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

__all__ = ["canonical_json", "chain_hash", "decode_payload", "encode_payload", "normalize_row"]


# --- journal payload encoding ---------------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__} into an audit record")


def encode_payload(row: Mapping[str, Any]) -> str:
    return json.dumps(row, default=_json_default, sort_keys=True, separators=(",", ":"))


def decode_payload(text: str, schema: pa.Schema) -> dict[str, Any]:
    """Inverse of :func:`encode_payload`: top-level timestamp fields become datetimes again."""
    row = json.loads(text)
    for field in schema:
        value = row.get(field.name)
        if pa.types.is_timestamp(field.type) and isinstance(value, str):
            row[field.name] = datetime.fromisoformat(value)
        elif pa.types.is_map(field.type) and isinstance(value, list):
            row[field.name] = [tuple(pair) for pair in value]  # JSON turned (key, value) into lists
    return row


# --- canonical form and hash chain ------------------------------------------------------------

def normalize_row(row: Mapping[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """The row as any Delta reader will return it: coerced through the Arrow schema.

    Hashing this form (not the Python dict we built) is what lets the verifier recompute the
    same hash from the Delta table years later. Unknown keys are an error, not silently lost.
    """
    extra = set(row) - set(schema.names)
    if extra:
        raise ValueError(f"fields {sorted(extra)} are not in the audit schema")
    return pa.Table.from_pylist([dict(row)], schema=schema).to_pylist()[0]


def _canon(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):  # Arrow map
            return {str(k): _canon(v) for k, v in sorted(value) if v is not None}
        return [_canon(v) for v in value]
    if isinstance(value, tuple):
        return [_canon(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def canonical_json(row: Mapping[str, Any], exclude: tuple[str, ...] = ("record_hash",)) -> str:
    body = {k: v for k, v in row.items() if k not in exclude}
    return json.dumps(_canon(body), sort_keys=True, separators=(",", ":"), default=str)


def chain_hash(prev_hash: str | None, normalized_row: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    h.update((prev_hash or "").encode())
    h.update(b"\n")
    h.update(canonical_json(normalized_row).encode())
    return h.hexdigest()
