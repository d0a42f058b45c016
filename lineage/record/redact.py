"""Keep secrets out of audit tables, MLflow params and logs.

Two rules, applied everywhere a value leaves the process:
- by key: a value whose key looks like a credential (``password``, ``token``, ``secret``,
  ``api_key``, ``access_key``, ``private_key``, ``credentials``, ``auth`` ...) is replaced by
  ``***``. Plain ``key`` words that name data (``partition_key``, ``join_key``, ``sort_key``)
  are *not* secrets and stay readable, so diffs of config stay useful;
- by value: every secret value seen by :func:`redact_mapping` is remembered for the process, and
  :func:`scrub_text` removes those values (and credentials embedded in URLs such as
  ``postgres://user:pass@host``) from free text like error messages and tracebacks.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Iterable, Mapping

__all__ = ["REDACTED", "is_secret_key", "redact_mapping", "redact_value", "scrub_text", "remember_secret"]

REDACTED = "***"

_SECRET_WORDS = {
    "password", "passwd", "pwd", "secret", "secrets", "token", "tokens", "credential", "credentials",
    "apikey", "auth", "authorization", "bearer", "cookie", "passphrase",
    "privatekey", "sas", "dsn",
}
# "<word> key" pairs that are credentials ("api key", "access key", "account key" ...).
_KEY_QUALIFIERS = {"api", "access", "secret", "private", "signing", "encryption", "master", "account", "ssh", "client", "auth", "sas"}
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@")
_ASSIGNED = re.compile(r"(?i)\b([a-z0-9_\-]*(?:password|passwd|token|api[_-]?key|secret|access[_-]?key)[a-z0-9_\-]*)(\s*[=:]\s*)([^\s,;'\"&]{3,})")
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/\-]{8,}=*)")

_known_secrets: set[str] = set()
_lock = threading.Lock()


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def is_secret_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    words = _words(key)
    if not words:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    joined = "".join(words)
    if any(s in joined for s in ("password", "apikey", "secret", "privatekey", "accesskey")):
        return True
    if words == ["key"]:
        return True
    for i, w in enumerate(words):
        if w == "key" and i > 0 and words[i - 1] in _KEY_QUALIFIERS:
            return True
    return False


def remember_secret(value: Any) -> None:
    """Register a secret value so :func:`scrub_text` removes it from any later text."""
    if isinstance(value, (str, bytes)) and len(value) >= 4:
        text = value.decode(errors="ignore") if isinstance(value, bytes) else value
        with _lock:
            _known_secrets.add(text)


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    return value


def redact_mapping(data: Any, *, _parent_secret: bool = False) -> Any:
    """A deep copy of ``data`` with secret-looking keys replaced by ``***``.

    Lists and nested mappings are walked; objects that are not JSON-like become their ``repr``
    (after scrubbing), so the result is always JSON-serialisable.
    """
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for k, v in data.items():
            if is_secret_key(k):
                _remember_all(v)
                out[str(k)] = REDACTED if v is not None else None
            else:
                out[str(k)] = redact_mapping(v)
        return out
    if isinstance(data, (list, tuple, set, frozenset)):
        return [redact_mapping(v) for v in data]
    if data is None or isinstance(data, (bool, int, float)):
        return data
    if isinstance(data, str):
        return scrub_text(data)
    return scrub_text(repr(data))


def _remember_all(value: Any) -> None:
    if isinstance(value, Mapping):
        for v in value.values():
            _remember_all(v)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            _remember_all(v)
    else:
        remember_secret(value)


def scrub_text(text: str | None, extra_secrets: Iterable[str] = ()) -> str | None:
    if text is None:
        return None
    out = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{REDACTED}@", text)
    out = _ASSIGNED.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", out)
    out = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", out)
    with _lock:
        secrets = sorted(_known_secrets | set(extra_secrets), key=len, reverse=True)
    for s in secrets:
        if s and s in out:
            out = out.replace(s, REDACTED)
    return out
