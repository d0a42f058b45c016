"""Run ids both ways: a Tracelake run id <-> its OpenLineage run id.

OpenLineage wants a UUID per run (the Spark listener and ``generate_new_uuid`` use UUIDv7);
Tracelake run ids are 26-character ULIDs (48 bits of start time, 80 random bits). A ULID cannot
be packed losslessly into a UUIDv7 (version and variant take 6 of its 128 bits), so the mapping
is a *derivation* one way and a *record* the other way:

- Tracelake -> OpenLineage: :func:`openlineage_run_id` is a UUIDv7 whose 48-bit timestamp is the
  run's start (from the ULID) and whose 74 other bits come from a hash of the run id. It is
  deterministic, so ``tracelake openlineage export`` replays years of history with exactly the
  ids the live publisher used, and time-ordered like the producer's own ids.
- OpenLineage -> Tracelake: the component-run record stores it (``openlineage_run_id``), so
  ``tracelake run show <uuid>`` finds the run; records written before the field existed are
  found by deriving the id again (:func:`find_by_openlineage_id`).

External runs (received from other producers) go the other way round: their Tracelake run id is
derived from the producer's run id (:func:`external_run_id`), so importing the same events twice
records nothing twice, and the producer's id is the one stored in the record.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable

from tracelake.lineage.record.runid import _ALPHABET, run_id_time

__all__ = ["external_run_id", "find_by_openlineage_id", "is_uuid", "openlineage_run_id"]

_SALT = b"tracelake-openlineage-run-id/1:"


def _uuid7(ms: int, entropy: bytes) -> str:
    rand = int.from_bytes(entropy[:10], "big")          # 80 bits, 74 of them used
    rand_a = (rand >> 68) & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = ((ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def openlineage_run_id(run_id: str) -> str:
    """The OpenLineage run id (UUIDv7) of a Tracelake run: same start millisecond, stable forever."""
    ms = int(run_id_time(run_id).timestamp() * 1000)
    return _uuid7(ms, hashlib.sha256(_SALT + run_id.encode()).digest())


def _ulid(ms: int, entropy: bytes) -> str:
    value = (ms << 80) | int.from_bytes(entropy[:10], "big")
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def external_run_id(ol_run_id: str, output: str, started_ms: int) -> str:
    """The Tracelake run id of an external run writing ``output``: a ULID of its start time,
    derived from the producer's run id (one OpenLineage run writing two tables is two records)."""
    return _ulid(int(started_ms), hashlib.sha256(b"tracelake-external/1:" + f"{ol_run_id}|{output}".encode()).digest())


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return len(str(text)) == 36


def find_by_openlineage_id(rows: Iterable[tuple[str, str | None]], wanted: str) -> str | None:
    """The Tracelake run id among ``(run_id, recorded openlineage_run_id)`` whose OpenLineage id is
    ``wanted`` - recorded, or derived for records older than the field."""
    wanted = str(uuid.UUID(wanted))
    for run_id, recorded in rows:
        if recorded:
            if recorded == wanted:
                return run_id
            continue
        try:
            if openlineage_run_id(run_id) == wanted:
                return run_id
        except ValueError:  # not a Tracelake run id (nothing to derive from)
            continue
    return None
