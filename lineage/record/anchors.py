"""Chain heads anchored where someone who can write the lakehouse cannot.

The hash chain shows a record was changed - unless whoever changed it recomputed every hash
after it, or deleted the newest records (or the whole journal) so there is nothing left to
disagree. Both need write access to the lakehouse only. So after every journal transaction the
new chain head - (table, journal, position, record hash) - is *anchored*: appended to a file
outside the lakehouse and signed with a key that is not in the lakehouse either (HMAC-SHA256).
``tracelake audit verify`` checks every anchored head against the records: a
position that is gone, or whose hash differs, is named - a recomputed chain, a truncated table,
a lost journal.

Where: ``TRACELAKE_ANCHOR_DIR`` (default ``~/.tracelake/anchors``, on the machine that runs the
pipeline); the key comes from ``TRACELAKE_ANCHOR_KEY`` (a secret: keep it in your secret store)
or, when unset, from ``<anchor dir>/anchor.key``, created once with mode 0600. In production,
point the directory at storage the pipeline can append to but the lakehouse's writers cannot
rewrite (a different account's bucket with object lock, a WORM volume), and copy anchors there
on a schedule (a plain append-only copy of the anchor file; ``tracelake audit anchor`` anchors
the current heads again). docs/security.md says which attacker this
stops.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Anchor", "AnchorStore", "anchor_store"]

_lock = threading.Lock()


@dataclass(frozen=True)
class Anchor:
    home: str
    table: str
    journal_id: str
    chain_seq: int
    record_hash: str
    at: float
    valid: bool = True        # the signature checked out


class AnchorStore:
    """An append-only, signed file of chain heads, one per lakehouse (by its root)."""

    def __init__(self, directory: Path, key: bytes, home: str):
        self.directory = directory
        self.key = key
        self.home = home
        name = hashlib.sha256(home.encode()).hexdigest()[:16]
        self.path = directory / f"{name}.jsonl"

    def _sign(self, body: dict) -> str:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def note(self, table: str, journal_id: str, chain_seq: int, record_hash: str) -> None:
        """Anchor a new chain head (called after the journal committed it)."""
        body = {"home": self.home, "table": table, "journal_id": journal_id, "chain_seq": chain_seq,
                "record_hash": record_hash, "at": round(time.time(), 3)}
        line = json.dumps({**body, "sig": self._sign(body)}, sort_keys=True, separators=(",", ":")) + "\n"
        data = line.encode()
        with _lock:
            # One O_APPEND write per line, under an exclusive lock: whole lines, even from several
            # processes. A full disk can take part of a line (a short write, no error): that part
            # is cut off again - a torn line would read as a forged anchor, a false tamper alarm.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                start = os.fstat(fd).st_size
                try:
                    written = os.write(fd, data)
                except OSError:
                    os.ftruncate(fd, start)
                    raise
                if written != len(data):
                    os.ftruncate(fd, start)
                    raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: only {written} of {len(data)} bytes of "
                                                f"an anchor line fitted in {self.path}; the partial line was removed")
            finally:
                os.close(fd)

    def retire(self) -> Path | None:
        """Set this lakehouse's anchors aside (kept, renamed with the time) - only for a lakehouse
        that was deliberately deleted and is being recreated at the same path (``demo --fresh``);
        otherwise its old heads would read as records removed from the new one."""
        if not self.path.exists():
            return None
        target = self.path.with_name(f"{self.path.stem}.retired-{time.strftime('%Y%m%dT%H%M%S')}.jsonl")
        self.path.rename(target)
        return target

    def anchors(self) -> Iterator[Anchor]:
        if not self.path.exists():
            return
        for raw in self.path.read_text().splitlines():
            try:
                data = json.loads(raw)
            except ValueError:
                yield Anchor(self.home, "?", "?", -1, "", 0.0, valid=False)
                continue
            sig = data.pop("sig", "")
            valid = hmac.compare_digest(sig, self._sign(data)) and data.get("home") == self.home
            yield Anchor(data.get("home", ""), data.get("table", "?"), data.get("journal_id", "?"),
                         int(data.get("chain_seq", -1)), data.get("record_hash", ""), float(data.get("at", 0)), valid)


def _key(directory: Path) -> bytes:
    configured = os.environ.get("TRACELAKE_ANCHOR_KEY")
    if configured:
        return configured.encode()
    path = directory / "anchor.key"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            try:
                os.write(fd, secrets.token_hex(32).encode())
            finally:
                os.close(fd)
    for _ in range(50):  # a key being written by another process right now
        key = path.read_bytes().strip()
        if key:
            return key
        time.sleep(0.01)
    raise RuntimeError(f"the anchor key {path} is empty; delete it to have a new one made")


def anchor_store(home: str, directory: str | None = None) -> AnchorStore:
    """The anchor store for the lakehouse at ``home`` (directory: TRACELAKE_ANCHOR_DIR or
    ``~/.tracelake/anchors``, created on first use)."""
    root = Path(directory or os.environ.get("TRACELAKE_ANCHOR_DIR") or Path.home() / ".tracelake" / "anchors")
    root.mkdir(parents=True, exist_ok=True)
    return AnchorStore(root, _key(root), home.rstrip("/"))
